"""Waiting on several asyncio events at once, with a bound; jobs run every so often."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def wait_any(*events: asyncio.Event, timeout: float) -> bool:
    """Return when any event is set (True) or ``timeout`` seconds pass (False)."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)


async def every(
    seconds: float, stop: asyncio.Event, job: Callable[[], Awaitable[object]], name: str
) -> None:
    """Run ``job`` every ``seconds`` until ``stop``; a failed round is logged and the next
    one redoes it (each of these jobs decides afresh from the store every time)."""
    while not stop.is_set():
        try:
            await job()
        except Exception as error:  # the database hiccuped: the next round looks again
            log.warning("%s: %s", name, error)
        await wait_any(stop, timeout=seconds)
