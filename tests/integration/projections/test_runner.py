"""The projection runner: exactly once across kills, identical to a rebuild, read-your-writes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import pytest

from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import RecordedEvent
from projections.checkpoints import CheckpointRegression, Checkpoints
from projections.projection import Projection
from projections.resources.index import ResourceIndex
from projections.runner import ProjectionRunner, wait_for_position
from tests.integration.conftest import drop_schema
from tests.integration.eventstore.builders import event, request, stream
from tests.integration.history import write_history
from tests.integration.projections.counting import EventCounter

ROOT = Path(__file__).resolve().parents[3]


async def rows(pool: asyncpg.Pool, table: str) -> list[tuple[object, ...]]:
    records = await pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2")
    return [tuple(r) for r in records]


async def rebuilt_rows(
    store: PostgresEventStore, database_url: str, make: type[ResourceIndex] | type[EventCounter]
) -> list[tuple[object, ...]]:
    """The projection built from position 0 into a scratch schema, as rows."""
    scratch = f"{store.schema}_scratch"
    projection: Projection = make(scratch)
    try:
        runner = ProjectionRunner(store, projection)
        await runner.setup()
        await runner.rebuild()
        return await rows(store.pool, projection.tables()[0])
    finally:
        await drop_schema(database_url, scratch)


async def test_live_projection_equals_rebuild(store: PostgresEventStore, database_url: str) -> None:
    total = await write_history(store, 400)
    index = ResourceIndex(store.schema)
    runner = ProjectionRunner(store, index, batch_size=97)
    await runner.setup()
    assert await runner.catch_up() == total
    live = await rows(store.pool, index.table)
    assert len(live) == 400
    assert live == await rebuilt_rows(store, database_url, ResourceIndex)


async def test_killed_mid_batch_ends_identical_to_rebuild(
    store: PostgresEventStore, database_url: str
) -> None:
    total = await write_history(store, 300)
    counter = EventCounter(store.schema)
    runner = ProjectionRunner(store, counter)
    await runner.setup()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.projections.counting",
        database_url,
        store.schema,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None
    seen = 0
    while seen < 3:  # two batches committed, the third written but not committed
        line = await asyncio.wait_for(child.stdout.readline(), 30)
        assert line.startswith(b"uncommitted"), line
        seen += 1
    os.kill(child.pid, signal.SIGKILL)
    await child.wait()
    checkpoint = await Checkpoints(store.schema).read(store.pool, counter.name)
    assert 0 < checkpoint < total
    counted = await store.pool.fetchval(f"SELECT sum(n) FROM {counter.table}")
    assert counted == len(await store.read_all(after=0, limit=10**6, until=checkpoint))

    await runner.catch_up()  # the restart
    assert await store.pool.fetchval(f"SELECT sum(n) FROM {counter.table}") == total
    assert await rows(store.pool, counter.table) == await rebuilt_rows(
        store, database_url, EventCounter
    )


async def test_two_runners_never_apply_a_batch_twice(store: PostgresEventStore) -> None:
    total = await write_history(store, 300)
    first = ProjectionRunner(store, EventCounter(store.schema), batch_size=50)
    second = ProjectionRunner(store, EventCounter(store.schema), batch_size=70)
    await first.setup()
    await second.setup()
    for _ in range(5):
        await asyncio.gather(first.catch_up(), second.catch_up())
    assert await store.pool.fetchval(f"SELECT sum(n) FROM {store.schema}.event_counts") == total


async def test_checkpoint_lower_than_stored_is_refused(store: PostgresEventStore) -> None:
    checkpoints = Checkpoints(store.schema)
    async with store.pool.acquire() as conn:
        await conn.execute(checkpoints.ddl)
        async with conn.transaction():
            await checkpoints.lock(conn, "p")
            await checkpoints.advance(conn, "p", 2)
        with pytest.raises(CheckpointRegression):
            async with conn.transaction():
                await checkpoints.advance(conn, "p", 1)
        assert await checkpoints.read(conn, "p") == 2


async def test_rebuild_replaces_the_tables(store: PostgresEventStore) -> None:
    await write_history(store, 50)
    index = ResourceIndex(store.schema)
    runner = ProjectionRunner(store, index)
    await runner.setup()
    await runner.catch_up()
    before = await rows(store.pool, index.table)
    await store.pool.execute(f"UPDATE {index.table} SET version = -1")  # drift
    events, seconds = await runner.rebuild()
    assert events == len(await store.read_all(limit=10**6)) and seconds > 0
    assert await rows(store.pool, index.table) == before


async def test_read_your_writes_waits_for_the_projection(store: PostgresEventStore) -> None:
    index = ResourceIndex(store.schema)
    runner = ProjectionRunner(store, index)
    await runner.setup()
    await write_history(store, 5)
    position = await store.last_position()
    assert not await wait_for_position(store.pool, store.schema, index.name, position, 0.2)
    stop = asyncio.Event()
    follower = asyncio.create_task(runner.follow(stop, idle_poll=5.0))
    try:
        assert await wait_for_position(store.pool, store.schema, index.name, position, 5.0)
        await write_history(store, 3, seed=8)
        later = await store.last_position()
        started = asyncio.get_running_loop().time()
        assert await wait_for_position(store.pool, store.schema, index.name, later, 5.0)
        # Woken by NOTIFY, not by the 5 s idle poll.
        assert asyncio.get_running_loop().time() - started < 2.0
        count = await store.pool.fetchval(f"SELECT count(*) FROM {index.table}")
        assert count == 8
    finally:
        stop.set()
        await asyncio.wait_for(follower, 10)


class BatchCounter(EventCounter):
    """An event counter that also records the size of every batch it is given."""

    def __init__(self, schema: str) -> None:
        super().__init__(schema)
        self.batches: list[int] = []

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        self.batches.append(len(events))
        await super().apply(conn, events)


@contextlib.asynccontextmanager
async def following(runner: ProjectionRunner, **options: float) -> AsyncIterator[None]:
    stop = asyncio.Event()
    follower = asyncio.create_task(runner.follow(stop, **options))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(follower, 10)


async def test_a_burst_of_appends_is_applied_in_few_batches(store: PostgresEventStore) -> None:
    counter = BatchCounter(store.schema)
    runner = ProjectionRunner(store, counter)
    await runner.setup()
    async with following(runner, idle_poll=5.0, interval=0.25):
        await asyncio.sleep(0.3)  # following, nothing yet
        started = asyncio.get_running_loop().time()
        for _ in range(30):  # one append each, ~0.5 s in all
            await store.append(request(event(stream(), 1)))
            await asyncio.sleep(0.015)
        position = await store.last_position()
        assert await wait_for_position(store.pool, store.schema, counter.name, position, 5.0)
        took = asyncio.get_running_loop().time() - started
        assert sum(counter.batches) == 30  # every event once
        # At most one catch-up per interval (and one more at each end), not one an append.
        assert len(counter.batches) <= took / 0.25 + 2, counter.batches


async def test_an_append_after_a_quiet_spell_is_applied_at_once(
    store: PostgresEventStore,
) -> None:
    counter = BatchCounter(store.schema)
    runner = ProjectionRunner(store, counter)
    await runner.setup()
    async with following(runner, idle_poll=5.0, interval=2.0):
        await asyncio.sleep(2.2)  # longer than the interval since the last catch-up
        started = asyncio.get_running_loop().time()
        await store.append(request(event(stream(), 1)))
        position = await store.last_position()
        assert await wait_for_position(store.pool, store.schema, counter.name, position, 5.0)
        assert asyncio.get_running_loop().time() - started < 1.0  # not held for the interval


async def test_two_followers_of_one_projection_apply_each_event_once(
    store: PostgresEventStore,
) -> None:
    counter = EventCounter(store.schema)
    first, second = ProjectionRunner(store, counter), ProjectionRunner(store, counter)
    await first.setup()
    await second.setup()
    async with following(first, interval=0.0), following(second, interval=0.0):
        total = await write_history(store, 60)
        position = await store.last_position()
        assert await wait_for_position(store.pool, store.schema, counter.name, position, 10.0)
        applied = await store.pool.fetchval(f"SELECT sum(n) FROM {counter.table}")
        assert applied == total
