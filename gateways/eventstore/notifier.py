"""One LISTEN connection per store, fanned out to every follower in the process.

A connection per follower would let a dozen SSE clients take the whole pool and starve
the writers; this costs one connection however many follow.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg


class AppendNotifier:
    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self._pool = pool
        self._channel = channel
        self._waiters: set[asyncio.Event] = set()
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()
        self._reconnecting: asyncio.Task[None] | None = None

    def _notify(self, *_: object) -> None:
        for waiter in self._waiters:
            waiter.set()

    def _lost(self, conn: asyncpg.Connection | None = None, *_: object) -> None:
        # Followers re-read at once (covering what was sent while the line was down) and
        # the listener comes back by itself for those still following.
        lost = conn if conn is not None else self._conn
        if lost is self._conn:
            self._conn = None
        if lost is not None:
            # Back to the pool, dead as it is: a pool waits in close() for every
            # connection it lent, and this one would never come back otherwise.
            asyncio.get_running_loop().create_task(self._release(lost))
        self._notify()
        if self._waiters and self._reconnecting is None:
            self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        delay = 0.1
        try:
            while self._waiters and (self._conn is None or self._conn.is_closed()):
                try:
                    await self._ensure()
                except Exception:  # the database is still away: try again, more slowly
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
                    continue
                self._notify()  # appends made while reconnecting were never announced
        finally:
            self._reconnecting = None

    async def _ensure(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            conn = await self._pool.acquire()
            try:
                await conn.add_listener(self._channel, self._notify)
                conn.add_termination_listener(self._lost)
            except BaseException:
                await self._release(conn)
                raise
            self._conn = conn

    async def _release(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(Exception):
            await self._pool.release(conn, timeout=5)

    @contextlib.asynccontextmanager
    async def listen(self) -> AsyncIterator[asyncio.Event]:
        """An event set whenever anything is appended while inside (by any process)."""
        await self._ensure()
        wake = asyncio.Event()
        self._waiters.add(wake)
        try:
            yield wake
        finally:
            self._waiters.discard(wake)

    async def close(self) -> None:
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.remove_listener(self._channel, self._notify)
            if conn is not None:
                await self._release(conn)
