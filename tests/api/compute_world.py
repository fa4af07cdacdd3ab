"""A region with one host, a flavor and an image, set up through the admin API."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from typing import Any

import msgspec

from hostd.fleet import SimulatedFleet
from tests.api.conftest import Api

CAPACITY = {"vcpus": 8, "memory_mb": 16384, "disk_gb": 200}


class World(msgspec.Struct):
    region_id: str
    cluster_id: str
    host_id: str
    flavor_id: str
    image_id: str


async def create(api: Api, path: str, body: dict[str, Any]) -> str:
    return str((await api.settled(await api.admin.post(path, json=body)))["resource_id"])


async def compute_world(api: Api, *, vcpus: int = 2, capacity: dict[str, int] = CAPACITY) -> World:
    tag = secrets.token_hex(3)
    region_id = await create(api, "/v1/admin/regions", {"name": f"r-{tag}"})
    cluster_id = await create(
        api,
        "/v1/admin/clusters",
        {
            "region_id": region_id,
            "name": "c1",
            "architecture": "x86_64",
            "kind": "compute",
            "cpu_overcommit": 1.0,
        },
    )
    host_id = await create(
        api,
        "/v1/admin/hosts",
        {"cluster_id": cluster_id, "hostname": f"node-{tag}", "capacity": capacity},
    )
    flavor_id = await create(
        api,
        "/v1/admin/flavors",
        {
            "name": f"f-{tag}",
            "vcpus": vcpus,
            "memory_mb": 1024,
            "disk": {"min_gb": 1, "max_gb": 20},
        },
    )
    pool_id = await create(
        api,
        "/v1/admin/image-pools",
        {
            "region_id": region_id,
            "name": "local",
            "backend": "qcow2",
            "location": "/var/lib/scloud/images",
        },
    )
    image_id = await create(
        api,
        "/v1/admin/images",
        {"name": "tiny", "pool_id": pool_id, "location": "/var/lib/scloud/images/tiny.qcow2"},
    )
    return World(region_id, cluster_id, host_id, flavor_id, image_id)


async def register_guest(api: Api, region_id: str, guest: Any) -> tuple[str, str]:
    """The test guest (``tests.support.guest_image.GuestImage``) as an image of the region:
    a qcow2 pool on its directory and the image on its disk, kernel and initrd.
    Returns (pool id, image id)."""
    pool_id = await create(
        api,
        "/v1/admin/image-pools",
        {
            "region_id": region_id,
            "name": "test-guests",
            "backend": "qcow2",
            "location": str(guest.disk.parent),
        },
    )
    image_id = await create(
        api,
        "/v1/admin/images",
        {
            "name": "busybox",
            "pool_id": pool_id,
            "location": str(guest.disk),
            "kernel": str(guest.kernel),
            "initrd": str(guest.initrd),
            "cmdline": guest.cmdline,
        },
    )
    return pool_id, image_id


async def until_healthy(api: Api, host_id: str) -> None:
    async with asyncio.timeout(15):
        while not api.platform.host_health.health(host_id)[0]:
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def one_host_fleet(api: Api, nats_url: str, host_id: str) -> AsyncIterator[SimulatedFleet]:
    """A simulated daemon for the world's host, beating every half second, healthy to the
    platform before the test starts."""
    fleet = SimulatedFleet(1, nats_url, host_ids=[host_id], heartbeat_every=0.5)
    await fleet.start()
    try:
        await api.platform.host_health.start()
        await until_healthy(api, host_id)
        yield fleet
    finally:
        await fleet.close()
