"""Feeds projections from the event store by position, exactly once per event."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import asyncpg

from gateways.eventstore.channels import ChannelWatch
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import RecordedEvent
from gateways.waiting import wait_any
from projections.checkpoints import CHANNEL, Checkpoints
from projections.projection import Projection, Rebuildable

ProgressHook = Callable[[int, int], None]
"""Called with (events applied so far, position reached) after each batch."""
FOLLOW_INTERVAL = 0.02
"""Seconds at least from one live catch-up's start to the next: appends that come faster
are applied together, one transaction for many rather than one each (no wait at all when
appends are further apart than this)."""


class ProjectionRunner:
    """Runs one projection: catch up in batches, then follow live appends.

    Each batch's table changes and the checkpoint commit in one transaction, and the
    checkpoint row is locked first: a runner killed mid-batch leaves nothing behind,
    and two runners of the same projection can never apply a batch twice.
    """

    def __init__(
        self,
        store: PostgresEventStore,
        projection: Projection,
        *,
        pool: asyncpg.Pool | None = None,
        batch_size: int = 2000,
    ) -> None:
        self.store = store
        self.projection = projection
        self.pool = pool or store.pool
        self.batch_size = batch_size
        self.checkpoints = Checkpoints(projection.schema)
        self.position = 0

    async def setup(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext($1))", f"ddl:{self.projection.schema}"
            )
            await conn.execute(self.checkpoints.ddl)
            await conn.execute(self.projection.ddl())
            self.position = await self.checkpoints.lock(conn, self.projection.name)

    async def apply(self, events: Sequence[RecordedEvent], after: int) -> bool:
        """Apply one batch that was read after ``after``; False if someone else did."""
        async with self.pool.acquire() as conn, conn.transaction():
            stored = await self.checkpoints.lock(conn, self.projection.name)
            if stored != after:
                self.position = stored
                return False
            await self.projection.apply(conn, events)
            await self.checkpoints.advance(conn, self.projection.name, events[-1].position)
        self.position = events[-1].position
        return True

    async def catch_up(
        self, *, until: int | None = None, progress: ProgressHook | None = None
    ) -> int:
        """Apply everything up to the store's head (or ``until``); returns events applied.

        The next batch is read while the current one is applied, on another connection,
        so a rebuild runs at the slower of the two rates rather than their sum.
        """
        applied = 0
        head = await self.store.last_position() if until is None else until
        async with self.pool.acquire() as conn:
            self.position = await self.checkpoints.read(conn, self.projection.name)
        after = self.position
        upcoming = asyncio.ensure_future(self._read(after, head))
        try:
            while True:
                batch = await upcoming
                if not batch:
                    break
                upcoming = asyncio.ensure_future(self._read(batch[-1].position, head))
                if not await self.apply(batch, after):
                    break  # another runner moved on; the caller will look again
                after = batch[-1].position
                applied += len(batch)
                if progress is not None:
                    progress(applied, self.position)
        finally:
            upcoming.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await upcoming
        return applied

    async def _read(self, after: int, head: int) -> list[RecordedEvent]:
        if after >= head:
            return []
        return await self.store.read_all(
            after=after,
            limit=self.batch_size,
            until=head,
            headers_only=getattr(self.projection, "headers_only", False),
        )

    async def follow(
        self,
        stop: asyncio.Event,
        *,
        idle_poll: float = 1.0,
        interval: float = FOLLOW_INTERVAL,
    ) -> None:
        """Catch up, then apply live appends until ``stop`` is set."""
        clock = asyncio.get_running_loop().time
        await self.catch_up()
        async with self.store.appended() as appended:
            while not stop.is_set():
                appended.clear()
                started = clock()
                await self._apply_new()
                await wait_any(appended, stop, timeout=idle_poll)
                rest = interval - (clock() - started)
                if rest > 0 and not stop.is_set():
                    await asyncio.sleep(rest)

    async def _apply_new(self) -> None:
        """Apply what follows the position this runner holds: a live catch-up costs a read
        and a transaction, not also a read of the head and of the checkpoint (``apply``
        checks the checkpoint anyway, and takes the stored one if another runner moved)."""
        while True:
            after = self.position
            batch = await self._read(after, 2**62)
            if not batch:
                return
            await self.apply(batch, after)  # if another runner applied it, read again
            if len(batch) < self.batch_size and self.position == batch[-1].position:
                return

    async def rebuild(self, *, progress: ProgressHook | None = None) -> tuple[int, float]:
        """Empty the tables and replay from position 0; returns (events, seconds)."""
        started = time.perf_counter()
        if isinstance(self.projection, Rebuildable):
            applied = await self._rebuild_in_memory(self.projection, progress)
        else:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._empty(conn)
            applied = await self.catch_up(progress=progress)
        return applied, time.perf_counter() - started

    async def _empty(self, conn: asyncpg.Connection) -> None:
        await self.checkpoints.lock(conn, self.projection.name)
        for table in self.projection.tables():
            await conn.execute(f"TRUNCATE {table}")
        await self.checkpoints.reset(conn, self.projection.name)

    async def _rebuild_in_memory(
        self, projection: Rebuildable, progress: ProgressHook | None
    ) -> int:
        head = await self.store.last_position()
        accumulator = projection.accumulator()
        applied = 0
        async with self.pool.acquire() as conn, conn.transaction():
            await self._empty(conn)
            upcoming = asyncio.ensure_future(self._read(0, head))
            try:
                while batch := await upcoming:
                    upcoming = asyncio.ensure_future(self._read(batch[-1].position, head))
                    accumulator.add(batch)
                    applied += len(batch)
                    if progress is not None:
                        progress(applied, batch[-1].position)
            finally:
                upcoming.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await upcoming
            await accumulator.write(conn)
            if head > 0:
                await self.checkpoints.advance(conn, projection.name, head)
        self.position = head
        return applied


RECHECK_SECONDS = 1.0
"""How often a waiting read looks at the checkpoint itself."""


async def wait_for_position(
    pool: asyncpg.Pool, schema: str, projection: str, position: int, timeout: float
) -> bool:
    """Wait (bounded) until ``projection`` has applied ``position``: read-your-writes.

    Waiting holds no database connection: progress notices come through the process's one
    listener, and the checkpoint is read again every ``RECHECK_SECONDS`` in case a notice
    was lost while that listener reconnected.
    """
    checkpoints = Checkpoints(schema)
    if await checkpoints.read(pool, projection) >= position:
        return True
    reached = asyncio.Event()

    def on_progress(payload: str) -> None:
        target_schema, name, value = payload.split(" ")
        if target_schema == schema and name == projection and int(value) >= position:
            reached.set()

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    watch = ChannelWatch.of(pool, CHANNEL)
    async with watch.subscribed(on_progress):
        while True:
            # Read again after subscribing: progress made in between would be missed.
            if reached.is_set() or await checkpoints.read(pool, projection) >= position:
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            await wait_any(reached, timeout=min(left, RECHECK_SECONDS))
            await watch.ensure()
