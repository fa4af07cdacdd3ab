"""A relay in its own process, slowed down so a test can kill it mid-stream."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

import nats

from gateways.bus.relay import EventRelay
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import RecordedEvent


class SlowRelay(EventRelay):
    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        await super().publish(events)
        await asyncio.sleep(0.05)


async def _run(dsn: str, schema: str, nats_url: str, stream: str, prefix: str) -> None:
    store = await PostgresEventStore.open(dsn, schema)
    client = await nats.connect(nats_url)
    relay = SlowRelay(
        store, client.jetstream(), stream=stream, prefix=prefix, window=16, batch_size=40
    )
    await relay.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(_run(*sys.argv[1:6]))
