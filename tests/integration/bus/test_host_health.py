"""The host-health watcher follows the heartbeat bucket on a real NATS and outlives NATS
failures: a JetStream request that times out under load once left every host unhealthy
for the rest of the process (seen as daemons "missing" their first heartbeat)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.js import JetStreamContext

from gateways.bus import host_health
from gateways.bus.host_health import BUCKET, Beat, HostHealthWatcher
from hostd.heartbeat import bucket


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url)
    yield client
    await client.drain()


class FlakyJetStream:
    """The real JetStream context, whose first ``failures`` bucket lookups time out."""

    def __init__(self, js: JetStreamContext, failures: int) -> None:
        self.js = js
        self.failures = failures

    async def key_value(self, name: str) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise TimeoutError("nats: timeout")
        return await self.js.key_value(name)


def beat(host_id: str) -> bytes:
    return msgspec.json.encode(
        Beat(
            host_id=host_id,
            at=datetime.now(UTC),
            load1=0.5,
            cpus=2,
            memory_total_kib=1 << 20,
            memory_available_kib=1 << 19,
        )
    )


async def until_healthy(watcher: HostHealthWatcher, host_id: str) -> None:
    async with asyncio.timeout(10):
        while not watcher.health(host_id)[0]:
            await asyncio.sleep(0.05)


async def test_the_watcher_follows_beats_again_after_nats_timeouts(
    nc: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host_health, "RETRY_MIN", 0.05)
    js = nc.jetstream()
    kv = await bucket(js, BUCKET)
    host_id = f"hst-health{datetime.now(UTC).timestamp():.0f}"
    flaky = FlakyJetStream(js, failures=3)
    watcher = HostHealthWatcher(flaky)  # type: ignore[arg-type]
    await watcher.start()
    try:
        await kv.put(host_id, beat(host_id))
        await until_healthy(watcher, host_id)
        assert flaky.failures == 0
        loaded = watcher.health(host_id)[1]
        assert loaded is not None and loaded.cpu_load_per_core == 0.25

        await kv.put(host_id, b"not a beat")  # skipped, and the watcher goes on
        other = f"{host_id}b"
        await kv.put(other, beat(other))
        await until_healthy(watcher, other)
    finally:
        await watcher.stop()
        for key in (host_id, f"{host_id}b"):
            await kv.purge(key)


def beat_at(host_id: str, at: datetime, load1: float = 0.5) -> bytes:
    return msgspec.json.encode(
        Beat(
            host_id=host_id,
            at=at,
            load1=load1,
            cpus=2,
            memory_total_kib=1 << 20,
            memory_available_kib=1 << 19,
        )
    )


async def test_a_snapshot_is_kept_until_a_host_revives_or_goes_stale(nc: Client) -> None:
    """Placements read one snapshot per second at most, yet never a wrong healthy flag."""
    js = nc.jetstream()
    kv = await bucket(js, BUCKET)
    tag = f"{datetime.now(UTC).timestamp():.0f}"
    old, new, late = f"hst-snap-old{tag}", f"hst-snap-new{tag}", f"hst-snap-late{tag}"
    ids = [old, new, late]
    watcher = HostHealthWatcher(js, stale_after=timedelta(seconds=3))
    await watcher.start()
    try:
        now = datetime.now(UTC)
        # ``old`` beat 2 s ago: stale in about 1 s, which ends the snapshot's life.
        await kv.put(old, beat_at(old, now - timedelta(seconds=2)))
        await kv.put(new, beat_at(new, now))
        await until_healthy(watcher, new)
        await until_healthy(watcher, old)
        first = watcher.snapshot(ids)
        assert first[old].healthy and first[new].healthy and late not in first
        assert watcher.snapshot(ids) is first  # kept: nothing changed
        assert watcher.snapshot(list(ids)) is not first  # other hosts asked for

        # A host's first beat is seen by the next snapshot, not a second later.
        kept = watcher.snapshot(ids)
        await kv.put(late, beat_at(late, datetime.now(UTC)))
        await until_healthy(watcher, late)
        revived = watcher.snapshot(ids)
        assert revived is not kept and revived[late].healthy
        assert revived[new] is kept[new]  # same beat, same object: views cached on it hold

        # ``old`` goes stale: the snapshot made before says healthy, the next one does not.
        async with asyncio.timeout(5):
            while watcher.health(old)[0]:
                await asyncio.sleep(0.05)
        assert not watcher.snapshot(ids)[old].healthy
        assert watcher.snapshot(ids)[new].healthy
    finally:
        await watcher.stop()
        for key in ids:
            await kv.purge(key)


async def test_a_snapshots_loads_lag_the_beats_by_a_second_at_most(nc: Client) -> None:
    js = nc.jetstream()
    kv = await bucket(js, BUCKET)
    host_id = f"hst-snap-load{datetime.now(UTC).timestamp():.0f}"
    watcher = HostHealthWatcher(js)
    await watcher.start()
    try:
        await kv.put(host_id, beat_at(host_id, datetime.now(UTC), load1=0.5))
        await until_healthy(watcher, host_id)
        first = watcher.snapshot([host_id])
        await kv.put(host_id, beat_at(host_id, datetime.now(UTC), load1=1.5))
        async with asyncio.timeout(5):
            while (load := watcher.health(host_id)[1]) is None or load.cpu_load_per_core < 0.5:
                await asyncio.sleep(0.02)
        started = asyncio.get_running_loop().time()
        async with asyncio.timeout(5):
            while (seen := watcher.snapshot([host_id])[host_id].load) == first[host_id].load:
                await asyncio.sleep(0.05)
        waited = asyncio.get_running_loop().time() - started
        assert seen is not None and seen.cpu_load_per_core == 0.75
        assert waited <= host_health.LOAD_FRESH + 0.2
    finally:
        await watcher.stop()
        await kv.purge(host_id)
