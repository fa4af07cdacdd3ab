"""Event store throughput: one at a time, group commit, the stock library, the raw ceiling.

Run: ``python -m tests.bench.eventstore [--scale 1.0]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
from urllib.parse import urlparse

import asyncpg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate as StockAggregate

from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, NewEvent
from projections.resources.index import ResourceIndex
from projections.runner import ProjectionRunner
from tests.bench.common import database, report, scratch_schema, stopwatch

CONTEXT = CommandContext(actor=Actor.system("bench"), tenant_id="tnt-bench")
STATE = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00+00:00"}}'


def one_event(originator_id: str, version: int = 1) -> AppendRequest:
    return AppendRequest(
        events=(NewEvent(originator_id, version, "bench:Thing.Created", STATE, CONTEXT.metadata()),)
    )


async def sequential(store: PostgresEventStore, count: int) -> float:
    with stopwatch() as elapsed:
        for _ in range(count):
            await store.append(one_event(new_id("i")))
    return count / elapsed[0]


async def concurrent(store: PostgresEventStore, count: int, writers: int = 64) -> float:
    async def writer(n: int) -> None:
        for _ in range(n):
            await store.append(one_event(new_id("i")))

    with stopwatch() as elapsed:
        await asyncio.gather(*(writer(count // writers) for _ in range(writers)))
    return (count // writers * writers) / elapsed[0]


async def lifecycle_mix(store: PostgresEventStore, resources: int, events_each: int) -> int:
    """Resources with several events each, like instances that start, stop, resize."""
    ids = [new_id("i") for _ in range(resources)]
    for version in range(1, events_each + 1):
        for start in range(0, resources, 500):
            events = tuple(
                NewEvent(rid, version, "bench:Thing.Changed", STATE, CONTEXT.metadata())
                for rid in ids[start : start + 500]
            )
            await store.append(AppendRequest(events=events))
    return resources * events_each


def stock_save_rate(url: str, schema: str, count: int) -> float:
    """The eventsourcing library's own ``Application.save()``, one event per call."""
    parts = urlparse(url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
        "POSTGRES_SCHEMA": schema,
    }

    class Stock(Application[object]):
        pass

    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    app = Stock(env=env)
    try:
        with stopwatch() as elapsed:
            for _ in range(count):
                app.save(StockAggregate())
    finally:
        app.close()
    return count / elapsed[0]


async def batched_insert_ceiling(url: str, schema: str, count: int, batch: int = 1000) -> float:
    """Plain locked INSERTs of 1,000 rows with no checks, no hashes: the floor of the cost."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"CREATE SCHEMA {schema}")
        await conn.execute(
            f"CREATE TABLE {schema}.raw (originator_id text, originator_version bigint, "
            "topic text, state bytea, notification_id bigserial, metadata bytea, "
            "PRIMARY KEY (originator_id, originator_version))"
        )
        await conn.execute(f"CREATE UNIQUE INDEX ON {schema}.raw (notification_id)")
        metadata = b'{"event_id":"0","tenant_id":"tnt-bench"}' * 5
        with stopwatch() as elapsed:
            for _ in range(count // batch):
                ids = [new_id("i") for _ in range(batch)]
                async with conn.transaction():
                    await conn.execute(f"LOCK TABLE {schema}.raw IN EXCLUSIVE MODE")
                    await conn.execute(
                        f"INSERT INTO {schema}.raw (originator_id, originator_version, topic, "
                        "state, metadata) SELECT * FROM unnest($1::text[], $2::bigint[], "
                        "$3::text[], $4::bytea[], $5::bytea[])",
                        ids,
                        [1] * batch,
                        ["bench:Thing.Created"] * batch,
                        [STATE] * batch,
                        [metadata] * batch,
                    )
        return (count // batch * batch) / elapsed[0]
    finally:
        await conn.close()


async def read_rate(store: PostgresEventStore) -> float:
    position, total = 0, 0
    with stopwatch() as elapsed:
        while batch := await store.read_all(after=position, limit=5000):
            position, total = batch[-1].position, total + len(batch)
    return total / elapsed[0]


async def main(scale: float) -> None:
    async with (
        database() as url,
        scratch_schema(url, "bench_es") as schema,
        scratch_schema(url, "bench_stock") as stock_schema,
        scratch_schema(url, "bench_raw") as raw_schema,
    ):
        store = await PostgresEventStore.open(url, schema)
        try:
            seq = await sequential(store, int(2000 * scale))
            group = await concurrent(store, int(40000 * scale))
            stock = await asyncio.to_thread(stock_save_rate, url, stock_schema, int(1500 * scale))
            ceiling = await batched_insert_ceiling(url, raw_schema, int(100000 * scale))
            runner = ProjectionRunner(store, ResourceIndex(schema), batch_size=50000)
            await runner.setup()
            single_events, single_seconds = await runner.rebuild()
            await lifecycle_mix(store, int(20000 * scale), 6)
            mixed_events, mixed_seconds = await runner.rebuild()
            reads = await read_rate(store)
        finally:
            await store.close()
    rebuild_single = single_events / single_seconds
    rebuild_mixed = mixed_events / mixed_seconds
    report(
        "event store (events/s)",
        {
            "single_event_commands_one_at_a_time": seq,
            "group_commit_64_concurrent": group,
            "stock_eventsourcing_save": stock,
            "raw_batched_insert_ceiling": ceiling,
            "read_all_by_position": reads,
            "rebuild_one_event_per_resource": rebuild_single,
            "rebuild_lifecycle_mix_6_events_per_resource": rebuild_mixed,
            "rebuild_mix_events": float(mixed_events),
        },
        {
            "group_commit_vs_one_at_a_time": group / seq,
            "group_commit_vs_stock_save": group / stock,
            "group_commit_vs_raw_ceiling": group / ceiling,
            "rebuild_mix_vs_read_all": rebuild_mixed / reads,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    asyncio.run(main(parser.parse_args().scale))
