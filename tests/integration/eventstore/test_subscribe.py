"""``subscribe``: catch up from a position, then follow live appends signalled by NOTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import cast

import asyncpg

from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import notify_channel
from tests.integration.eventstore.builders import OpenStore, event, request, stream


@contextlib.asynccontextmanager
async def following(
    store: PostgresEventStore, after: int, idle_poll: float
) -> AsyncIterator[asyncio.Queue[RecordedEvent]]:
    """Runs a subscription in a task, putting each event it yields on a queue."""
    received: asyncio.Queue[RecordedEvent] = asyncio.Queue()

    async def run() -> None:
        batches = cast(
            AsyncGenerator[list[RecordedEvent], None],
            store.subscribe(after=after, batch_size=4, idle_poll=idle_poll),
        )
        async with contextlib.aclosing(batches):
            async for batch in batches:
                for recorded in batch:
                    received.put_nowait(recorded)

    task = asyncio.create_task(run())
    try:
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def take(received: asyncio.Queue[RecordedEvent], count: int) -> list[int]:
    async with asyncio.timeout(5):
        return [(await received.get()).position for _ in range(count)]


async def test_catches_up_then_follows_live_appends_promptly(store: PostgresEventStore) -> None:
    originator_id = stream()
    await store.append(request(*(event(originator_id, v) for v in range(1, 11))))

    async with following(store, after=0, idle_poll=60.0) as received:
        # Ten existing events arrive in batches of four: the catch-up does not wait.
        assert await take(received, 10) == list(range(1, 11))
        assert received.empty()

        for round_ in range(3):
            await asyncio.sleep(0.05)  # let the subscriber go idle on its NOTIFY wait
            started = time.monotonic()
            first_version = 11 + 2 * round_
            await store.append(request(event(originator_id, first_version)))
            await store.append(request(event(originator_id, first_version + 1)))
            got = await take(received, 2)
            elapsed = time.monotonic() - started
            assert got == [first_version, first_version + 1]
            assert elapsed < 0.5, f"live events took {elapsed:.3f}s with a 60s poll"


async def test_hears_appends_from_another_store(
    store: PostgresEventStore, open_store: OpenStore
) -> None:
    other = await open_store()
    async with following(store, after=0, idle_poll=60.0) as received:
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await other.append(request(event(stream(), 1)))
        assert await take(received, 1) == [1]
        assert time.monotonic() - started < 0.5


async def test_starts_after_the_given_position(store: PostgresEventStore) -> None:
    await store.append(request(*(event(stream(), 1) for _ in range(6))))
    async with following(store, after=4, idle_poll=60.0) as received:
        assert await take(received, 2) == [5, 6]
        await asyncio.sleep(0.05)
        assert received.empty()


async def test_polls_when_no_notification_comes(store: PostgresEventStore) -> None:
    """The idle poll covers a lost NOTIFY: here the event is inserted without one."""
    async with following(store, after=0, idle_poll=0.1) as received:
        await asyncio.sleep(0.05)
        async with store.pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {store.schema}.scloud_events "
                "(originator_id, originator_version, topic, state, notification_id) "
                "VALUES ($1, 1, 'topic', '\\x7b7d', 1)",
                stream(),
            )
        assert await take(received, 1) == [1]


def available(store: PostgresEventStore) -> int:
    pool = store.pool
    return int(pool.get_idle_size() + pool.get_max_size() - pool.get_size())


async def test_followers_share_one_listening_connection(store: PostgresEventStore) -> None:
    """Following holds the store's one LISTEN connection, never one per follower or cycle."""

    async def settle(expected: Callable[[int], bool]) -> None:
        async with asyncio.timeout(5):
            while not expected(available(store)):
                await asyncio.sleep(0.01)

    before = available(store)
    for _ in range(3):
        async with following(store, after=0, idle_poll=60.0), following(store, 0, 60.0):
            await settle(lambda now: now < before)  # the listener holds a connection
        # A connection cut off mid-query is released a moment later; a leak never is.
        await settle(lambda now: now == before - 1)


async def test_many_followers_do_not_starve_writers(store: PostgresEventStore) -> None:
    """Every SSE client and long-poll follows the log; a dozen of them must not stop appends.

    With one pooled connection per listener, followers beyond the pool's size (10 by
    default) take every connection, and the group committer waits forever for one.
    """
    followers = store.pool.get_max_size() + 2
    async with contextlib.AsyncExitStack() as stack:
        queues = [
            await stack.enter_async_context(following(store, after=0, idle_poll=60.0))
            for _ in range(followers)
        ]
        await asyncio.sleep(0.2)
        async with asyncio.timeout(3):
            written = await store.append(request(event(stream(), 1)))
            for received in queues:
                assert [(await received.get()).position] == list(written.positions)


async def test_a_lost_listening_connection_is_replaced(
    store: PostgresEventStore, sql: asyncpg.Connection
) -> None:
    """PostgreSQL restarts and idle timeouts cut the LISTEN connection; live following must
    resume on a new one, not fall back to the idle poll for as long as the follower lives."""
    listen = f'LISTEN "{notify_channel(store.schema)}"'
    find = "SELECT pid FROM pg_stat_activity WHERE query = $1"
    async with following(store, after=0, idle_poll=60.0) as received:
        async with asyncio.timeout(5):
            while not (listeners := await sql.fetch(find, listen)):
                await asyncio.sleep(0.01)
        assert len(listeners) == 1
        assert await sql.fetchval("SELECT pg_terminate_backend($1)", listeners[0]["pid"])
        await asyncio.sleep(0.3)

        started = time.monotonic()
        await store.append(request(event(stream(), 1)))
        assert await take(received, 1) == [1]
        assert time.monotonic() - started < 1.0
