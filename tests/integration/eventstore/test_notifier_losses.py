"""The append notifier's connection, lost or refused, goes back to the pool: a worker whose
database went away must still close its pool and end (it hung in ``close()`` for good)."""

from __future__ import annotations

import asyncio

import asyncpg

from gateways.eventstore.postgres import PostgresEventStore

CLOSE_BUDGET = 5.0


async def _terminate(database_url: str, pid: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


async def test_a_store_closes_after_its_listener_was_killed(database_url: str, schema: str) -> None:
    store = await PostgresEventStore.open(database_url, schema)
    closed = False
    try:
        async with store.appended() as wake:
            listener = store._notifier._conn
            assert listener is not None
            wake.clear()
            await _terminate(database_url, listener.get_server_pid())
            # Followers are woken to re-read; the listener comes back by itself.
            await asyncio.wait_for(wake.wait(), 5)
            async with asyncio.timeout(10):
                while (conn := store._notifier._conn) is None or conn is listener:
                    await asyncio.sleep(0.05)
        await asyncio.wait_for(store.close(), CLOSE_BUDGET)
        closed = True
    finally:
        if not closed:
            store.pool.terminate()


async def test_a_listener_that_cannot_listen_is_released(database_url: str, schema: str) -> None:
    store = await PostgresEventStore.open(database_url, schema)
    notifier = store._notifier
    closed = False
    try:
        notifier._channel = ""  # LISTEN "" is refused by PostgreSQL
        for _ in range(3):
            try:
                async with store.appended():
                    raise AssertionError("listened on an empty channel")
            except asyncpg.PostgresError:
                pass
        await asyncio.wait_for(store.close(), CLOSE_BUDGET)
        closed = True
    finally:
        if not closed:
            store.pool.terminate()


async def test_a_store_whose_connection_is_held_closes_within_its_timeout(
    database_url: str, schema: str
) -> None:
    store = await PostgresEventStore.open(database_url, schema)
    _held = await store.pool.acquire()  # a job stuck on a connection it never gives back
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(store.close(timeout=1.0), CLOSE_BUDGET)
        assert loop.time() - started < 3
    finally:
        store.pool.terminate()
