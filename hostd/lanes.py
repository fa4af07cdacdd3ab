"""Work in order per key, different keys at once, with a bound on how many run together."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lanes(Generic[T]):
    """One lane per key (an instance): its items run one after another, in submission order.

    A lane exists only while it has work, so a host that has seen thousands of instances
    keeps no state for the idle ones.
    """

    def __init__(self, handle: Callable[[T], Awaitable[None]], *, limit: int) -> None:
        self._handle = handle
        self._slots = asyncio.Semaphore(limit)
        self._queues: dict[str, deque[T]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.running = 0

    def submit(self, key: str, item: T) -> None:
        queue = self._queues.get(key)
        if queue is not None:
            queue.append(item)
            return
        queue = self._queues[key] = deque([item])
        task = asyncio.create_task(self._drain(key, queue), name=f"lane-{key}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, key: str, queue: deque[T]) -> None:
        try:
            while queue:
                async with self._slots:
                    self.running += 1
                    try:
                        await self._handle(queue[0])
                    finally:
                        self.running -= 1
                        queue.popleft()
        finally:
            # No await between the last check of ``queue`` and here: a submit cannot slip in.
            del self._queues[key]

    def take_waiting(self) -> list[T]:
        """Remove and return the items behind each lane's head, in lane order (for a shutdown).

        A head may still be waiting for a slot; it runs when one frees, like a started item.
        """
        waiting: list[T] = []
        for queue in self._queues.values():
            head = queue.popleft()
            waiting.extend(queue)
            queue.clear()
            queue.append(head)
        return waiting

    @property
    def busy(self) -> bool:
        return bool(self._queues)

    async def join(self) -> None:
        """Wait until every lane is empty."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)
