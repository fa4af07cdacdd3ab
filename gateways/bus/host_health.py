"""Which hosts are alive and how loaded, from the heartbeat bucket, kept in memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError

from domain.compute.scheduler import LiveLoad

log = logging.getLogger(__name__)

BUCKET = "scloud_hosts"
RETRY_MIN, RETRY_MAX = 0.5, 5.0
"""Seconds between attempts to follow the bucket again after a failure."""


class Beat(msgspec.Struct, frozen=True):
    host_id: str
    at: datetime
    load1: float
    cpus: int
    memory_total_kib: int
    memory_available_kib: int


class HostHealthWatcher:
    """Follows the heartbeat bucket; a host is healthy while its last beat is recent."""

    def __init__(self, js: JetStreamContext, *, stale_after: timedelta = timedelta(seconds=20)):
        self._js = js
        self.stale_after = stale_after
        self.beats: dict[str, Beat] = {}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="scloud-host-health")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 2.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        """Follow the bucket for good: a NATS hiccup (a JetStream request that times out
        under load, a reconnect, a watcher whose consumer went away) starts it again, since
        without this task no host is ever healthy again in this process."""
        pause = RETRY_MIN
        while True:
            try:
                await self._follow()
                pause = RETRY_MIN
            except BucketNotFoundError:
                self._ready.set()  # no host has ever beaten: nothing to wait for
                await asyncio.sleep(RETRY_MIN)
            except Exception as error:
                log.warning(
                    "host health: following %s failed (%r); again in %.1fs", BUCKET, error, pause
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, RETRY_MAX)

    async def _follow(self) -> None:
        kv = await self._js.key_value(BUCKET)
        watcher = await kv.watchall()
        try:
            async for entry in watcher:
                if entry is None:  # the initial values are all delivered
                    self._ready.set()
                    continue
                if entry.value:
                    try:
                        beat = msgspec.json.decode(entry.value, type=Beat)
                    except msgspec.DecodeError:
                        log.warning("host health: unreadable beat under %s", entry.key)
                        continue
                    self.beats[beat.host_id] = beat
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def health(self, host_id: str, now: datetime | None = None) -> tuple[bool, LiveLoad | None]:
        beat = self.beats.get(host_id)
        if beat is None:
            return False, None
        now = now or datetime.now(tz=UTC)
        load = LiveLoad(
            cpu_load_per_core=beat.load1 / max(beat.cpus, 1),
            memory_available_mb=beat.memory_available_kib // 1024,
        )
        return now - beat.at <= self.stale_after, load
