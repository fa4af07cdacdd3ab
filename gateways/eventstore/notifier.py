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

    def _notify(self, *_: object) -> None:
        for waiter in self._waiters:
            waiter.set()

    def _lost(self, *_: object) -> None:
        # Followers re-read at once and the next listen() reconnects; notifications sent
        # meanwhile are covered by the followers' idle polls.
        self._conn = None
        self._notify()

    async def _ensure(self) -> None:
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            conn = await self._pool.acquire()
            await conn.add_listener(self._channel, self._notify)
            conn.add_termination_listener(self._lost)
            self._conn = conn

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
        async with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await conn.remove_listener(self._channel, self._notify)
                await self._pool.release(conn)
