"""A fresh PostgreSQL schema per test, so event store tests never see each other's events."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateways.eventstore.postgres import PostgresEventStore
from tests.integration.eventstore.builders import OpenStore, drop_schema, new_schema_name


@pytest.fixture
async def schema(database_url: str) -> AsyncIterator[str]:
    """A schema name no other test uses; dropped afterwards."""
    name = new_schema_name()
    yield name
    await drop_schema(database_url, name)


@pytest.fixture
async def store(database_url: str, schema: str) -> AsyncIterator[PostgresEventStore]:
    opened = await PostgresEventStore.open(database_url, schema)
    yield opened
    await opened.close()


@pytest.fixture
async def open_store(database_url: str, schema: str) -> AsyncIterator[OpenStore]:
    """Opens more stores on the test's schema: each its own pool and group committer."""
    opened: list[PostgresEventStore] = []

    async def opener() -> PostgresEventStore:
        another = await PostgresEventStore.open(database_url, schema, min_size=1, max_size=4)
        opened.append(another)
        return another

    yield opener
    for another in opened:
        await another.close()


@pytest.fixture
async def sql(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection, for reaching past the store (tampering, direct function calls)."""
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()
