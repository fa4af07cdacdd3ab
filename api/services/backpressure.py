"""Backpressure: creates and requests refused with 429 and Retry-After before they pile up.

A create is refused while the builds already asked for are behind (too many waiting, the
oldest waiting too long, or the dispatcher too far behind the store), so a client flat out
gets told to slow down instead of having its builds time out in a queue. The build queue is
read at most once a second per process. A tenant's requests are limited per second too.
"""

from __future__ import annotations

import asyncio
import math
import time

import msgspec
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from domain.errors import DomainError
from gateways.eventstore.postgres import PostgresEventStore
from projections.resources.build_queue import BuildQueue, BuildQueueQuery


class Overloaded(DomainError):
    """Too much is queued already: retry after ``retry_after`` seconds."""

    code = "overloaded"
    status = 429


class TooManyRequests(DomainError):
    code = "too_many_requests"
    status = 429


class BuildLimits(msgspec.Struct, frozen=True, kw_only=True):
    max_waiting: int = 1000
    """Instances created and not yet built, platform-wide."""
    max_wait_seconds: float = 60.0
    """How long the oldest waiting build may have waited (the build deadline is 180 s)."""
    max_dispatch_lag: int = 5000
    """Events the dispatcher may be behind the store."""


class BuildBackpressure:
    def __init__(self, schema: str, limits: BuildLimits, every: float = 1.0) -> None:
        self._query = BuildQueueQuery(schema)
        self._limits, self._every = limits, every
        self._read_at = -math.inf
        self._queue: BuildQueue | None = None
        self._head = 0
        self._lock = asyncio.Lock()

    async def check(self, store: PostgresEventStore) -> None:
        """Raise ``Overloaded`` when a new build would wait behind too many others."""
        queue = await self._reading(store)
        limits = self._limits
        behind = self._head - queue.dispatched_to
        if queue.waiting >= limits.max_waiting:
            why = f"{queue.waiting} instances are waiting to be built"
        elif queue.oldest_seconds >= limits.max_wait_seconds:
            why = f"the oldest build has waited {queue.oldest_seconds:.0f} s"
        elif behind >= limits.max_dispatch_lag:
            why = f"host commands are {behind} events behind"
        else:
            return
        raise Overloaded(f"{why}: retry later", retry_after=max(1, math.ceil(self._every * 2)))

    async def _reading(self, store: PostgresEventStore) -> BuildQueue:
        async with self._lock:
            now = time.monotonic()
            if self._queue is None or now - self._read_at >= self._every:
                self._head = await store.last_position()
                self._queue = await self._query.read(store.pool)
                self._read_at = now
            return self._queue


class TenantRateLimit:
    """At most ``per_second`` requests a second for each tenant in this process (0: off)."""

    def __init__(self, per_second: int) -> None:
        self._item = RateLimitItemPerSecond(per_second) if per_second > 0 else None
        self._limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def hit(self, tenant_id: str) -> None:
        if self._item is None or self._limiter.hit(self._item, "tenant", tenant_id):
            return
        raise TooManyRequests(
            f"more than {self._item.amount} requests a second for this tenant", retry_after=1
        )
