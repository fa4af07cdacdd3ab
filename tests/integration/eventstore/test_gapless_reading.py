"""A reader following positions never skips or repeats an event, however writers race.

32 writers spread over 6 stores (each its own pool and group committer, like separate
processes) and 2 "slow" committers that hold their transaction, and so the table lock,
open for a random moment after positions are assigned. One reader follows with
``read_all(after=last)``, another with ``subscribe``; both must see exactly the final log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, cast

import asyncpg

from gateways.eventstore.groupcommit import BatchWriter, GroupCommitter
from gateways.eventstore.hashchain import ChainVerifier
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, AppendResult, RecordedEvent
from tests.integration.eventstore.builders import OpenStore, event, request, stream

WRITERS = 32
EVENTS_PER_WRITER = 160  # 32 x 160 = 5,120 events at least
STORES = 6
SLOW_COMMITTERS = 2


class _CommitLater:
    """A connection whose appends commit a random moment after they are computed."""

    def __init__(self, conn: asyncpg.Connection, rng: random.Random) -> None:
        self._conn = conn
        self._rng = rng

    async def fetchrow(self, query: str, *args: Any) -> Any:
        async with self._conn.transaction():
            row = await self._conn.fetchrow(query, *args)
            await asyncio.sleep(self._rng.random() * 0.002)
        return row

    async def fetch(self, query: str, *args: Any) -> Any:
        return await self._conn.fetch(query, *args)


class SlowCommitWriter(BatchWriter):
    """Test-only: holds the table lock past the append, so commits lag position assignment."""

    def __init__(self, schema: str, seed: int) -> None:
        super().__init__(schema)
        self._rng = random.Random(seed)

    async def write(
        self, conn: asyncpg.Connection, batch: Sequence[AppendRequest]
    ) -> list[AppendResult | Exception]:
        slow: Any = _CommitLater(conn, self._rng)
        return await super().write(slow, batch)


Append = Callable[[AppendRequest], Awaitable[AppendResult]]


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def keys(events: Sequence[RecordedEvent]) -> list[tuple[int, str, int]]:
    return [(e.position, e.originator_id, e.originator_version) for e in events]


async def read_everything(store: PostgresEventStore) -> list[RecordedEvent]:
    everything: list[RecordedEvent] = []
    while batch := await store.read_all(after=everything[-1].position if everything else 0):
        everything.extend(batch)
    return everything


async def test_followers_see_every_event_once_in_order(
    store: PostgresEventStore, open_store: OpenStore, database_url: str
) -> None:
    stores = [await open_store() for _ in range(STORES)]
    slow_pools: list[asyncpg.Pool] = []
    slow_committers: list[GroupCommitter] = []
    for seed in range(SLOW_COMMITTERS):
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        assert pool is not None
        slow_pools.append(pool)
        slow_committers.append(GroupCommitter(pool, SlowCommitWriter(store.schema, seed)))
    sinks: list[Append] = [s.append for s in stores]
    sinks += [c.submit for c in slow_committers]

    acknowledged: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    async def writer(number: int) -> None:
        rng = random.Random(1000 + number)
        append = sinks[number % len(sinks)]
        originator_id, version, written = stream(), 0, 0
        while written < EVENTS_PER_WRITER:
            if rng.random() < 0.3:
                originator_id, version = stream(), 0
            count = rng.randint(1, 7)
            events = [event(originator_id, version + i) for i in range(1, count + 1)]
            await asyncio.sleep(rng.random() * 0.002)
            try:
                await append(request(*events))
            except Exception as error:
                errors.append(error)
                return
            acknowledged.extend((originator_id, version + i) for i in range(1, count + 1))
            version += count
            written += count

    polled: list[RecordedEvent] = []
    subscribed: list[RecordedEvent] = []

    async def poll() -> None:
        while True:
            after = polled[-1].position if polled else 0
            batch = await store.read_all(after=after, limit=500)
            polled.extend(batch)
            if not batch:
                await asyncio.sleep(0.0005)

    async def follow() -> None:
        batches = cast(
            AsyncGenerator[list[RecordedEvent], None],
            store.subscribe(after=0, batch_size=300, idle_poll=0.05),
        )
        async with contextlib.aclosing(batches):
            async for batch in batches:
                subscribed.extend(batch)

    followers = [asyncio.create_task(poll()), asyncio.create_task(follow())]
    try:
        async with asyncio.timeout(60):
            await asyncio.gather(*(writer(n) for n in range(WRITERS)))
        final = await read_everything(store)
        last = final[-1].position
        await wait_until(lambda: bool(polled) and polled[-1].position >= last, timeout=10)
        await wait_until(lambda: bool(subscribed) and subscribed[-1].position >= last, timeout=10)
    finally:
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        for committer in slow_committers:
            await committer.close()
        for pool in slow_pools:
            await pool.close()

    assert errors == []
    assert len(acknowledged) >= WRITERS * EVENTS_PER_WRITER
    assert len(final) == len(acknowledged)
    assert sorted((e.originator_id, e.originator_version) for e in final) == sorted(acknowledged)
    final_positions = [e.position for e in final]
    assert all(a < b for a, b in itertools.pairwise(final_positions))
    assert final_positions == list(range(1, len(final) + 1))
    assert keys(polled) == keys(final), "the polling reader skipped or repeated events"
    assert keys(subscribed) == keys(final), "the subscriber skipped or repeated events"

    # Writers that raced from different stores still built one unbroken hash chain.
    verifier = ChainVerifier()
    verifier.feed(final)
    assert verifier.checked == len(final)
