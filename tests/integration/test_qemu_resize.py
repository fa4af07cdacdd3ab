"""A real guest under libvirt ``qemu:///system`` (TCG) grows live: a resize of the running
instance plugs in a vCPU and a DIMM through the API, the dispatcher, NATS and hostd, and the
guest keeps running without a restart (its boot marker shows once). A resize it cannot take
live (fewer vCPUs) stops it and boots it again at the new size.

Needs root, like tests/integration/test_qemu_boot.py (whose fixtures it shares).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import libvirt

from gateways.settings import Settings
from tests.api.compute_world import compute_world, create, register_guest
from tests.api.conftest import Api, platform_overrides
from tests.api.conftest import api as api  # the platform fixture, for this test
from tests.api.test_compute_e2e import wait_status
from tests.integration.test_qemu_boot import (
    BOOT_BUDGET,
    console,
    guest,
    host_dir,
    hostd,
    libvirt_uri,
    remove_domain,
    wait_for_line,
)
from tests.support.guest_image import MARKER, GuestImage

__all__ = ["api", "guest", "host_dir", "libvirt_uri", "platform_overrides"]  # shared fixtures


def live_size(uri: str, name: str) -> tuple[int, int]:
    """(vCPUs, MiB) of the running domain, as QEMU has them now."""
    conn = libvirt.open(uri)
    try:
        domain = conn.lookupByName(name)
        return domain.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE), domain.info()[1] // 1024
    finally:
        conn.close()


def domain_id(uri: str, name: str) -> int:
    """Libvirt's id of the running domain: a new one at each start."""
    conn = libvirt.open(uri)
    try:
        return int(conn.lookupByName(name).ID())
    finally:
        conn.close()


def flavor(name: str, vcpus: int, memory_mb: int) -> dict[str, object]:
    return {
        "name": name,
        "vcpus": vcpus,
        "memory_mb": memory_mb,
        "disk": {"min_gb": 1, "max_gb": 20},
    }


async def test_a_real_guest_takes_a_vcpu_and_memory_live_and_restarts_to_shrink(
    api: Api,
    nats_url: str,
    tmp_path: Path,
    libvirt_uri: str,
    guest: GuestImage,
    host_dir: Path,
) -> None:
    world = await compute_world(api, vcpus=1)  # 1 vCPU, 1 GiB: room to 4 and 4 GiB
    _, image_id = await register_guest(api, world.region_id, guest)
    bigger = await create(api, "/v1/admin/flavors", flavor("grown", 2, 1536))
    smaller = await create(api, "/v1/admin/flavors", flavor("shrunk", 1, 1536))
    settings = Settings(
        host_driver="libvirt",
        libvirt_uri=libvirt_uri,
        libvirt_domain_type="qemu",
        state_dir=tmp_path,
        host_state_dir=host_dir,
    )
    owner = await api.tenant("qemu-resize")
    instance_id = ""
    async with hostd(nats_url, world.host_id, settings):
        await api.platform.host_health.start()
        async with asyncio.timeout(15):
            while not api.platform.host_health.health(world.host_id)[0]:
                await asyncio.sleep(0.1)
        try:
            created = await api.settled(
                await owner.post(
                    "/v1/instances",
                    json={
                        "name": "growing",
                        "region_id": world.region_id,
                        "flavor_id": world.flavor_id,
                        "image_id": image_id,
                    },
                )
            )
            instance_id = created["instance_ids"][0]
            await wait_status(api, owner, instance_id, "running")
            serial = host_dir / "serial" / f"{instance_id}.log"
            await wait_for_line(serial, f"{MARKER} {instance_id}", BOOT_BUDGET)
            assert live_size(libvirt_uri, instance_id) == (1, 1024)
            booted = domain_id(libvirt_uri, instance_id)

            await api.settled(
                await owner.post(
                    f"/v1/instances/{instance_id}/actions/resize", json={"flavor_id": bigger}
                )
            )
            view = await wait_status(api, owner, instance_id, "running")
            assert (view["vcpus"], view["memory_mb"], view["error"]) == (2, 1536, None)
            assert live_size(libvirt_uri, instance_id) == (2, 1536), "plugged into QEMU live"
            stream = await api.platform.store.read_stream(instance_id)
            assert not [e for e in stream if e.topic.endswith(".HotResizeRefused")]
            assert domain_id(libvirt_uri, instance_id) == booted, "the guest never restarted"
            assert (await asyncio.to_thread(console, serial)).count(MARKER) == 1

            await api.settled(
                await owner.post(
                    f"/v1/instances/{instance_id}/actions/resize", json={"flavor_id": smaller}
                )
            )
            await wait_status(api, owner, instance_id, "running")
            assert live_size(libvirt_uri, instance_id) == (1, 1536)
            assert domain_id(libvirt_uri, instance_id) != booted, "booted again to shrink"
            await wait_for_line(serial, f"{MARKER} {instance_id}", BOOT_BUDGET)
        finally:
            if instance_id:
                remove_domain(libvirt_uri, instance_id)
