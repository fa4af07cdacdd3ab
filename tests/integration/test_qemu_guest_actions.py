"""A real guest under libvirt ``qemu:///system`` (TCG): its VNC console answers RFB on the port
the API names, a reinstall boots it again from a fresh disk, and a password reset without a
guest agent fails with libvirt's cause while the guest keeps running.

Needs root, like tests/integration/test_qemu_boot.py (whose fixtures it shares).
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import libvirt

from gateways.settings import Settings
from tests.api.compute_world import compute_world, create, register_guest
from tests.api.conftest import Api, platform_overrides
from tests.api.conftest import api as api  # the platform fixture, for this test
from tests.api.test_compute_e2e import wait_status
from tests.hostd.test_guest_commands import backing_of
from tests.integration.test_qemu_boot import (
    BOOT_BUDGET,
    domain_state,
    guest,
    host_dir,
    hostd,
    libvirt_uri,
    remove_domain,
    wait_for_line,
)
from tests.support.guest_image import MARKER, GuestImage

__all__ = ["api", "guest", "host_dir", "libvirt_uri", "platform_overrides"]  # shared fixtures


async def rfb_banner(host: str, port: int) -> bytes:
    """The first line a VNC server sends: ``RFB 003.008``."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    try:
        return await asyncio.wait_for(reader.readexactly(12), 5)
    finally:
        writer.close()


async def test_console_reinstall_and_password_reset_of_a_real_guest(
    api: Api,
    nats_url: str,
    tmp_path: Path,
    libvirt_uri: str,
    guest: GuestImage,
    host_dir: Path,
) -> None:
    world = await compute_world(api, vcpus=1)
    pool_id, image_id = await register_guest(api, world.region_id, guest)
    settings = Settings(
        host_driver="libvirt",
        libvirt_uri=libvirt_uri,
        libvirt_domain_type="qemu",
        state_dir=tmp_path,
        host_state_dir=host_dir,
    )
    owner = await api.tenant("qemu-actions")
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
                        "name": "tiny",
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

            async with asyncio.timeout(10):
                while (
                    answer := await owner.get(f"/v1/instances/{instance_id}/console")
                ).status != 200:
                    await asyncio.sleep(0.1)
            endpoint = await answer.json()
            assert endpoint["port"] >= 5900 and endpoint["listen"] == "127.0.0.1"
            assert (await rfb_banner(endpoint["listen"], endpoint["port"])).startswith(b"RFB 003.")

            # Reinstalled from another image (a copy of the guest's disk, same kernel): the
            # root disk is made afresh on that image's file.
            disk = host_dir / "disks" / f"{instance_id}.qcow2"
            assert backing_of(disk) == str(guest.disk)
            copy = host_dir / "images" / "busybox-copy.qcow2"
            copy.parent.mkdir()
            shutil.copyfile(guest.disk, copy)
            copy.parent.chmod(0o755)
            copy.chmod(0o644)
            other = await create(
                api,
                "/v1/admin/images",
                {
                    "name": "busybox-copy",
                    "pool_id": pool_id,
                    "location": str(copy),
                    "kernel": str(guest.kernel),
                    "initrd": str(guest.initrd),
                    "cmdline": guest.cmdline,
                },
            )
            reinstalling = time.monotonic()
            await api.settled(
                await owner.post(
                    f"/v1/instances/{instance_id}/actions/reinstall", json={"image_id": other}
                )
            )
            async with asyncio.timeout(60):
                while not any(
                    e.topic.endswith(".Reinstalled")
                    for e in await api.platform.store.read_stream(instance_id)
                ):
                    await asyncio.sleep(0.1)
            await wait_status(api, owner, instance_id, "running")
            assert backing_of(disk) == str(copy)  # a new disk, made from the other image
            await wait_for_line(serial, f"{MARKER} {instance_id}", BOOT_BUDGET)
            print(f"reinstalled and booted again in {time.monotonic() - reinstalling:.1f} s")
            assert domain_state(libvirt_uri, instance_id) == libvirt.VIR_DOMAIN_RUNNING

            await api.settled(
                await owner.post(
                    f"/v1/instances/{instance_id}/actions/reset-password",
                    json={"password": "correct horse battery staple"},
                )
            )
            async with asyncio.timeout(60):
                while True:
                    view = await wait_status(api, owner, instance_id, "running")
                    if view["error"]:
                        break
                    await asyncio.sleep(0.2)
            assert "agent" in view["error"].lower(), view["error"]  # the busybox guest has none
            print(f"password reset without a guest agent: {view['error']}")
            assert domain_state(libvirt_uri, instance_id) == libvirt.VIR_DOMAIN_RUNNING
        finally:
            if instance_id:
                remove_domain(libvirt_uri, instance_id)
