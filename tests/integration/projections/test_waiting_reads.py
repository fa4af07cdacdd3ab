"""Reads that wait for a read model hold no database connection while they wait: with the
worker stalled, ten of them took the API's whole pool and everything else waited behind."""

from __future__ import annotations

import asyncio

from gateways.eventstore.postgres import PostgresEventStore
from projections.checkpoints import Checkpoints
from projections.runner import wait_for_position

PROJECTION = "stalled_model"


def lent(store: PostgresEventStore) -> int:
    pool = store.pool
    return int(pool.get_size() - pool.get_idle_size())


async def test_many_waiting_reads_hold_one_connection_and_all_see_the_progress(
    store: PostgresEventStore,
) -> None:
    checkpoints = Checkpoints(store.schema)
    async with store.pool.acquire() as conn:
        await conn.execute(checkpoints.ddl)
        async with conn.transaction():
            await checkpoints.lock(conn, PROJECTION)
    waiting = store.pool.get_max_size() * 3
    reads = [
        asyncio.create_task(wait_for_position(store.pool, store.schema, PROJECTION, 7, 20))
        for _ in range(waiting)
    ]
    await asyncio.sleep(0.5)
    assert not any(read.done() for read in reads)
    assert lent(store) <= 1, f"{lent(store)} connections lent to {waiting} waiting reads"
    # Other work still gets a connection at once.
    async with asyncio.timeout(1):
        assert await store.pool.fetchval("SELECT 1") == 1

    async with store.pool.acquire() as conn, conn.transaction():
        await checkpoints.lock(conn, PROJECTION)
        await checkpoints.advance(conn, PROJECTION, 7)
    async with asyncio.timeout(3):
        assert all(await asyncio.gather(*reads))


async def test_a_waiting_read_times_out_false(store: PostgresEventStore) -> None:
    checkpoints = Checkpoints(store.schema)
    async with store.pool.acquire() as conn:
        await conn.execute(checkpoints.ddl)
    assert not await wait_for_position(store.pool, store.schema, PROJECTION, 3, 0.3)
