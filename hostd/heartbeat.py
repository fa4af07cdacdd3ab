"""A host's heartbeat and load, put in a NATS KV bucket the platform watches."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from gateways.waiting import wait_any

BUCKET = "scloud_hosts"


class Heartbeat(msgspec.Struct, frozen=True):
    host_id: str
    at: datetime
    load1: float
    cpus: int
    memory_total_kib: int
    memory_available_kib: int


def _meminfo() -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                name, _, rest = line.partition(":")
                values[name] = int(rest.split()[0])
    except OSError:
        return 0, 0
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def measure(host_id: str) -> Heartbeat:
    total, available = _meminfo()
    return Heartbeat(
        host_id=host_id,
        at=datetime.now(tz=UTC),
        load1=os.getloadavg()[0],
        cpus=os.cpu_count() or 1,
        memory_total_kib=total,
        memory_available_kib=available,
    )


async def bucket(js: JetStreamContext) -> KeyValue:
    try:
        return await js.key_value(BUCKET)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=BUCKET, history=1, ttl=600))


async def beat(js: JetStreamContext, host_id: str, stop: asyncio.Event, every: float) -> None:
    """Put a heartbeat every ``every`` seconds until ``stop`` is set."""
    kv = await bucket(js)
    while not stop.is_set():
        await kv.put(host_id, msgspec.json.encode(measure(host_id)))
        await wait_any(stop, timeout=every)
