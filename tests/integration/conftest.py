"""Integration fixtures: a fresh PostgreSQL schema per test, and a store opened on it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import asyncpg
import pytest

from gateways.eventstore.postgres import PostgresEventStore


async def drop_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.fixture
async def schema(database_url: str) -> AsyncIterator[str]:
    """A schema no other test uses; dropped afterwards."""
    name = "t_" + secrets.token_hex(8)
    yield name
    await drop_schema(database_url, name)


@pytest.fixture
async def store(database_url: str, schema: str) -> AsyncIterator[PostgresEventStore]:
    opened = await PostgresEventStore.open(database_url, schema)
    yield opened
    await opened.close()
