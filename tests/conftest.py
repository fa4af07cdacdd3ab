"""Session-wide PostgreSQL and NATS: the machine's own when they answer, else embedded ones.

- ``SCLOUD_TEST_DATABASE_URL`` / ``SCLOUD_TEST_NATS_URL`` name the servers to use instead of
  the machine's defaults; a named server that does not answer fails the tests that need it.
- ``SCLOUD_TEST_EMBEDDED=1`` ignores all of those and starts embedded servers in a temp dir.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from gateways.embedded import EmbeddedNats, EmbeddedPostgres, jetstream_answers, postgres_answers

MACHINE_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
MACHINE_NATS_URL = "nats://127.0.0.1:4222"


async def _machine_url(
    variable: str, default: str, answers: Callable[[str], Awaitable[bool]]
) -> str | None:
    """The server to share, or None to start an embedded one."""
    if os.environ.get("SCLOUD_TEST_EMBEDDED", "0") not in ("", "0"):
        return None
    named = os.environ.get(variable)
    if await answers(named or default):
        return named or default
    if named:
        pytest.fail(f"{variable} is set but its server does not answer", pytrace=False)
    return None


@pytest.fixture(scope="session")
async def database_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    url = await _machine_url("SCLOUD_TEST_DATABASE_URL", MACHINE_DATABASE_URL, postgres_answers)
    if url is not None:
        yield url
        return
    async with EmbeddedPostgres(tmp_path_factory.mktemp("postgres")) as server:
        yield server.url


@pytest.fixture(scope="session")
async def nats_url(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    url = await _machine_url("SCLOUD_TEST_NATS_URL", MACHINE_NATS_URL, jetstream_answers)
    if url is not None:
        yield url
        return
    async with EmbeddedNats(tmp_path_factory.mktemp("nats")) as server:
        yield server.url
