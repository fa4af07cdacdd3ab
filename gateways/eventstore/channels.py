"""One LISTEN connection per pool and channel, shared by every waiter in the process.

A read that waits for a read model used to hold a pooled connection (its own LISTEN) for
the whole wait: with the worker stalled, ten waiting reads took the API's whole pool and
every command and ``/healthz`` waited behind them. Here waiting costs no connection but the
one listener, and a waiter reads what it waits for now and then in case a notice was lost
while the listener reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import asyncpg

Subscriber = Callable[[str], None]
"""Called with each notice's payload."""

_WATCHES: dict[int, dict[str, ChannelWatch]] = {}
"""By ``id`` of the pool (pools take no weak references); each watch holds its pool, so an
id is never reused while its entry is here, and ``close_all`` removes it."""


class ChannelWatch:
    def __init__(self, pool: asyncpg.Pool, channel: str) -> None:
        self._pool, self._channel = pool, channel
        self._subscribers: set[Subscriber] = set()
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def of(cls, pool: asyncpg.Pool, channel: str) -> ChannelWatch:
        watches = _WATCHES.setdefault(id(pool), {})
        if channel not in watches:
            watches[channel] = cls(pool, channel)
        return watches[channel]

    @classmethod
    async def close_all(cls, pool: asyncpg.Pool) -> None:
        """Give every listener of ``pool`` back, before the pool closes (it waits for them)."""
        for watch in list(_WATCHES.pop(id(pool), {}).values()):
            await watch.close()

    @contextlib.asynccontextmanager
    async def subscribed(self, subscriber: Subscriber) -> AsyncIterator[None]:
        self._subscribers.add(subscriber)
        try:
            await self.ensure()
            yield
        finally:
            self._subscribers.discard(subscriber)

    async def ensure(self) -> None:
        """Listening, unless the database is away (a waiter's own reads then cover it)."""
        async with self._lock:
            if self._conn is not None and not self._conn.is_closed():
                return
            self._conn = None
            try:
                conn = await self._pool.acquire(timeout=5)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
                return
            try:
                await conn.add_listener(self._channel, self._notice)
                conn.add_termination_listener(self._lost)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await self._release(conn)
                return
            self._conn = conn

    def _notice(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for subscriber in list(self._subscribers):
            subscriber(payload)

    def _lost(self, conn: asyncpg.Connection) -> None:
        if conn is self._conn:
            self._conn = None
        asyncio.get_running_loop().create_task(self._release(conn))

    async def _release(self, conn: asyncpg.Connection) -> None:
        with contextlib.suppress(Exception):
            await self._pool.release(conn, timeout=5)

    async def close(self) -> None:
        async with self._lock:
            conn, self._conn = self._conn, None
        if conn is None:
            return
        if not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.remove_listener(self._channel, self._notice)
        await self._release(conn)
