"""The host-health watcher follows the heartbeat bucket on a real NATS and outlives NATS
failures: a JetStream request that times out under load once left every host unhealthy
for the rest of the process (seen as daemons "missing" their first heartbeat)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
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
