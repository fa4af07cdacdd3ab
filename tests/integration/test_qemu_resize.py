"""A real guest under libvirt ``qemu:///system`` (TCG) grows live: a resize of the running
instance plugs in a vCPU and a DIMM through the API, the dispatcher, NATS and hostd, and the
guest keeps running without a restart (same domain, its boot marker once). A resize it cannot
take live (fewer vCPUs) stops it and boots it again at the new size.

Needs root, like tests/integration/test_qemu_boot.py (whose fixtures it shares).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import libvirt

from tests.api.compute_world import create
from tests.api.conftest import Api, platform_overrides
from tests.api.conftest import api as api  # the platform fixture, for this test
from tests.api.test_compute_e2e import wait_status
from tests.api.test_instance_resize import flavor, resize
from tests.integration.test_qemu_boot import (
    BOOT_BUDGET,
    console,
    guest,
    host_dir,
    libvirt_uri,
    wait_for_line,
)
from tests.integration.test_qemu_guest_actions import booted_guest
from tests.support.guest_image import MARKER, GuestImage

__all__ = ["api", "guest", "host_dir", "libvirt_uri", "platform_overrides"]  # shared fixtures


def live(uri: str, name: str) -> tuple[int, int, int]:
    """(vCPUs, MiB, libvirt's domain id: a new one at each start) of the running domain."""
    conn = libvirt.open(uri)
    try:
        domain = conn.lookupByName(name)
        vcpus = domain.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE)
        return vcpus, domain.info()[1] // 1024, int(domain.ID())
    finally:
        conn.close()


async def test_a_real_guest_takes_a_vcpu_and_memory_live_and_restarts_to_shrink(
    api: Api,
    nats_url: str,
    tmp_path: Path,
    libvirt_uri: str,
    guest: GuestImage,
    host_dir: Path,
) -> None:
    bigger = await create(api, "/v1/admin/flavors", flavor("grown", 2, 1536))
    smaller = await create(api, "/v1/admin/flavors", flavor("shrunk", 1, 1536))
    async with booted_guest(  # 1 vCPU, 1 GiB: room to 4 and 4 GiB
        api, nats_url, tmp_path, libvirt_uri, guest, host_dir, "qemu-resize"
    ) as booted:
        instance_id, owner, serial = booted.instance_id, booted.owner, booted.serial
        vcpus, memory, booted_as = live(libvirt_uri, instance_id)
        assert (vcpus, memory) == (1, 1024)

        await api.settled(await resize(owner, instance_id, bigger))
        view = await wait_status(api, owner, instance_id, "running")
        assert (view["vcpus"], view["memory_mb"], view["error"]) == (2, 1536, None)
        assert live(libvirt_uri, instance_id) == (2, 1536, booted_as), "plugged in live"
        stream = await api.platform.store.read_stream(instance_id)
        assert not [e for e in stream if e.topic.endswith(".HotResizeRefused")]
        assert (await asyncio.to_thread(console, serial)).count(MARKER) == 1

        await api.settled(await resize(owner, instance_id, smaller))
        await wait_status(api, owner, instance_id, "running")
        vcpus, memory, started_as = live(libvirt_uri, instance_id)
        assert (vcpus, memory) == (1, 1536) and started_as != booted_as, "booted again"
        await wait_for_line(serial, f"{MARKER} {instance_id}", BOOT_BUDGET)
