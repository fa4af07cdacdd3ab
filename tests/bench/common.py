"""What every benchmark shares: a database and NATS to run against, and the report format.

A benchmark prints its figures, the ratio to a baseline measured in the same run, and
as its last line the same figures as one JSON object, so runs can be compared.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg

from gateways.embedded import EmbeddedNats, EmbeddedPostgres, jetstream_answers, postgres_answers

MACHINE_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_NATS_URL = "nats://127.0.0.1:4222"


@contextlib.asynccontextmanager
async def database() -> AsyncIterator[str]:
    """The machine's PostgreSQL when it answers, else an embedded one for this run."""
    url = os.environ.get("SCLOUD_BENCH_DATABASE_URL", MACHINE_DATABASE_URL)
    if await postgres_answers(url):
        yield url
        return
    with tempfile.TemporaryDirectory() as state:
        async with EmbeddedPostgres(Path(state) / "postgres") as server:
            yield server.url


@contextlib.asynccontextmanager
async def nats_server() -> AsyncIterator[str]:
    url = os.environ.get("SCLOUD_BENCH_NATS_URL", MACHINE_NATS_URL)
    if await jetstream_answers(url):
        yield url
        return
    with tempfile.TemporaryDirectory() as state:
        async with EmbeddedNats(Path(state) / "nats") as server:
            yield server.url


@contextlib.asynccontextmanager
async def scratch_schema(url: str, prefix: str) -> AsyncIterator[str]:
    schema = f"{prefix}_{os.getpid()}_{int(time.time())}"
    try:
        yield schema
    finally:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            await conn.close()


@contextlib.contextmanager
def stopwatch() -> Iterator[list[float]]:
    """``with stopwatch() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    elapsed = [0.0]
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - started


def report(title: str, figures: dict[str, float], ratios: dict[str, float]) -> None:
    print(title)
    for name, value in figures.items():
        print(f"  {name:<48} {value:>14,.1f}")
    for name, value in ratios.items():
        print(f"  {name:<48} {value:>13.2f}x")
    print(json.dumps({**figures, **{f"ratio_{k}": round(v, 3) for k, v in ratios.items()}}))
