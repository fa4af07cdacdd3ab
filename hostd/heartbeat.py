"""A host's heartbeat and load, put in a NATS KV bucket the platform watches."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from gateways.waiting import wait_any

BUCKET = "scloud_hosts"

log = logging.getLogger(__name__)


class Heartbeat(msgspec.Struct, frozen=True):
    host_id: str
    at: datetime
    load1: float
    cpus: int
    memory_total_kib: int
    memory_available_kib: int
    instances: int = 0
    """Domains the compute driver manages on this host, running or not."""


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


def measure(host_id: str, instances: int = 0) -> Heartbeat:
    total, available = _meminfo()
    return Heartbeat(
        host_id=host_id,
        at=datetime.now(tz=UTC),
        load1=os.getloadavg()[0],
        cpus=os.cpu_count() or 1,
        memory_total_kib=total,
        memory_available_kib=available,
        instances=instances,
    )


async def bucket(js: JetStreamContext, name: str = BUCKET) -> KeyValue:
    try:
        return await js.key_value(name)
    except BucketNotFoundError:
        return await js.create_key_value(KeyValueConfig(bucket=name, history=1, ttl=600))


async def beat(
    js: JetStreamContext,
    host_id: str,
    stop: asyncio.Event,
    every: float,
    count: Callable[[], Awaitable[int]] | None = None,
    *,
    bucket_name: str = BUCKET,
) -> None:
    """Put a heartbeat every ``every`` seconds until ``stop`` is set.

    ``count`` says how many instances the host has (the last known number if it fails).
    """
    kv = await bucket(js, bucket_name)
    instances = 0
    while not stop.is_set():
        if count is not None:
            with contextlib.suppress(Exception):
                instances = await count()
        try:
            await kv.put(host_id, msgspec.json.encode(measure(host_id, instances)))
        except Exception as error:
            # A missed beat or two is what the deadline is for; the next one may get through.
            log.warning("hostd %s: heartbeat not stored: %s", host_id, error)
        await wait_any(stop, timeout=every)
