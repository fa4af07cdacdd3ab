"""Which hosts are alive and how loaded, from the heartbeat bucket, kept in memory."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import BucketNotFoundError

from domain.compute.scheduler import HostHealth, LiveLoad

log = logging.getLogger(__name__)

BUCKET = "scloud_hosts"
RETRY_MIN, RETRY_MAX = 0.5, 5.0
"""Seconds between attempts to follow the bucket again after a failure."""
LOAD_FRESH = 1.0
"""Seconds a snapshot's loads may lag the beats; whether a host is healthy never lags."""


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
        self._revived = 0
        """Beats that made a host healthy (its first, or one after a stale one)."""
        self._snapshot: _Snapshot | None = None
        self.snapshots_made = 0

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
                    self._note(beat)
        finally:
            with contextlib.suppress(Exception):
                await watcher.stop()  # type: ignore[no-untyped-call]

    def _note(self, beat: Beat) -> None:
        last = self.beats.get(beat.host_id)
        if last is None or datetime.now(tz=UTC) - last.at > self.stale_after:
            self._revived += 1
        self.beats[beat.host_id] = beat

    def snapshot(self, host_ids: Sequence[str]) -> Mapping[str, HostHealth]:
        """The health of those of ``host_ids`` that beat, as ``health`` tells it, for
        placing instances (a host without a beat is absent: never healthy).

        Made again only for other hosts, when a host became healthy, when the first
        healthy host's beat goes stale, or after ``LOAD_FRESH``: a create over a thousand
        hosts used to spend more time working out their health than placing on them.
        """
        now, clock = datetime.now(tz=UTC), time.monotonic()
        kept = self._snapshot
        if (
            kept is not None
            and kept.host_ids is host_ids
            and kept.revived == self._revived
            and now < kept.expires
            and clock - kept.made < LOAD_FRESH
        ):
            return kept.health
        # A host whose beat and health are as in the last snapshot keeps its object: what
        # is cached on it (the scheduler's view of the host) stays valid.
        last = {} if kept is None else kept.health
        last_beats = {} if kept is None else kept.beats
        health: dict[str, HostHealth] = {}
        beats: dict[str, Beat] = {}
        expires = now + self.stale_after
        for host_id in host_ids:
            beat = self.beats.get(host_id)
            if beat is None:
                continue
            beats[host_id] = beat
            healthy = now - beat.at <= self.stale_after
            if healthy:
                expires = min(expires, beat.at + self.stale_after)
            before = last.get(host_id)
            if before is not None and before.healthy == healthy and last_beats.get(host_id) is beat:
                health[host_id] = before
            else:
                health[host_id] = HostHealth(healthy, _load(beat))
        self.snapshots_made += 1
        self._snapshot = _Snapshot(host_ids, health, beats, self._revived, expires, clock)
        return health

    def health(self, host_id: str, now: datetime | None = None) -> tuple[bool, LiveLoad | None]:
        beat = self.beats.get(host_id)
        if beat is None:
            return False, None
        now = now or datetime.now(tz=UTC)
        return now - beat.at <= self.stale_after, _load(beat)


def _load(beat: Beat) -> LiveLoad:
    return LiveLoad(
        cpu_load_per_core=beat.load1 / max(beat.cpus, 1),
        memory_available_mb=beat.memory_available_kib // 1024,
    )


class _Snapshot(msgspec.Struct, frozen=True):
    host_ids: Sequence[str]
    health: Mapping[str, HostHealth]
    beats: Mapping[str, Beat]
    """The beats it was made from."""
    revived: int
    expires: datetime
    """When the first healthy host's beat goes stale: the snapshot is wrong from then."""
    made: float
