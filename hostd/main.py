"""The composition root of ``scloud hostd``: one per hypervisor, talking only to NATS."""

from __future__ import annotations

import asyncio

import nats

from hostd.heartbeat import beat


async def run_hostd(nats_url: str, host_id: str, stop: asyncio.Event, every: float = 5.0) -> None:
    client = await nats.connect(nats_url, name=f"hostd-{host_id}", max_reconnect_attempts=-1)
    try:
        await beat(client.jetstream(), host_id, stop, every)
    finally:
        await client.drain()
