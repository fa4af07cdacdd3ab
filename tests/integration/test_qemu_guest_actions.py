"""A real guest under libvirt ``qemu:///system`` (TCG): its VNC console answers RFB on the port
the API names, a reinstall boots it again from a fresh disk, and a password reset goes through
libvirt and the guest's qemu-guest-agent to its /etc/shadow (the guest prints the changed line
on its serial console), while one the guest refuses fails with the agent's cause and leaves
the guest running.

Needs root, like tests/integration/test_qemu_boot.py (whose fixtures it shares).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import msgspec
import pytest

from gateways.guest_passwords import sha512_crypt
from gateways.settings import Settings
from tests.api.compute_world import compute_world, create, register_guest
from tests.api.conftest import Api, Caller, platform_overrides
from tests.api.conftest import api as api  # the platform fixture, for this test
from tests.api.test_compute_e2e import wait_status
from tests.hostd.test_guest_commands import backing_of
from tests.integration.test_qemu_boot import (
    BOOT_BUDGET,
    console,
    domain_state,
    guest,
    host_dir,
    hostd,
    libvirt_uri,
    remove_domain,
    wait_for_line,
)
from tests.support.guest_image import AGENT_PORT, MARKER, SHADOW_MARKER, GuestImage

__all__ = ["api", "guest", "host_dir", "libvirt_uri", "platform_overrides"]  # shared fixtures


async def rfb_banner(host: str, port: int) -> bytes:
    """The first line a VNC server sends: ``RFB 003.008``."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
    try:
        return await asyncio.wait_for(reader.readexactly(12), 5)
    finally:
        writer.close()


def agent_connected(uri: str, name: str) -> bool:
    """libvirt's view of the guest agent channel: ``connected`` once qemu-ga holds its port."""
    conn = libvirt.open(uri)
    try:
        described = ET.fromstring(conn.lookupByName(name).XMLDesc(0))
    finally:
        conn.close()
    target = described.find(f"devices/channel/target[@name='{AGENT_PORT}']")
    return target is not None and target.get("state") == "connected"


async def reset_password(
    api: Api, owner: Caller, instance_id: str, body: dict[str, Any]
) -> tuple[str, str]:
    """A reset through the API, to its end: (the hash the platform sent, the closing event)."""
    await api.settled(
        await owner.post(f"/v1/instances/{instance_id}/actions/reset-password", json=body)
    )
    async with asyncio.timeout(60):
        while True:
            stream = [
                (e.topic.rpartition(".")[2], e.state)
                for e in await api.platform.store.read_stream(instance_id)
            ]
            started = max(i for i, (name, _) in enumerate(stream) if name == "PasswordResetStarted")
            ended = [
                name
                for name, _ in stream[started + 1 :]
                if name in ("PasswordReset", "PasswordResetFailed")
            ]
            if ended:
                return str(msgspec.json.decode(stream[started][1])["password_hash"]), ended[0]
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Booted:
    instance_id: str
    owner: Caller
    serial: Path
    """The guest's serial console, as the host daemon logs it."""
    pool_id: str
    """The image pool the test guest is registered in."""
    boot_seconds: float
    """From ``running`` in the API to the guest's marker."""


@contextlib.asynccontextmanager
async def booted_guest(
    api: Api,
    nats_url: str,
    state_dir: Path,
    libvirt_uri: str,
    guest: GuestImage,
    host_dir: Path,
    tenant: str,
) -> AsyncIterator[Booted]:
    """The test guest created through the API on a real host daemon, up to its marker."""
    world = await compute_world(api, vcpus=1)
    pool_id, image_id = await register_guest(api, world.region_id, guest)
    settings = Settings(
        host_driver="libvirt",
        libvirt_uri=libvirt_uri,
        libvirt_domain_type="qemu",
        state_dir=state_dir,
        host_state_dir=host_dir,
        host_image_pools=(guest.disk.parent,),
    )
    owner = await api.tenant(tenant)
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
            boot = await wait_for_line(serial, f"{MARKER} {instance_id}", BOOT_BUDGET)
            yield Booted(instance_id, owner, serial, pool_id, boot)
        finally:
            if instance_id:
                remove_domain(libvirt_uri, instance_id)


async def test_console_and_reinstall_of_a_real_guest(
    api: Api,
    nats_url: str,
    tmp_path: Path,
    libvirt_uri: str,
    guest: GuestImage,
    host_dir: Path,
) -> None:
    async with booted_guest(
        api, nats_url, tmp_path, libvirt_uri, guest, host_dir, "qemu-actions"
    ) as booted:
        instance_id, owner, serial = booted.instance_id, booted.owner, booted.serial
        async with asyncio.timeout(10):
            while (answer := await owner.get(f"/v1/instances/{instance_id}/console")).status != 200:
                await asyncio.sleep(0.1)
        endpoint = await answer.json()
        assert endpoint["port"] >= 5900 and endpoint["listen"] == "127.0.0.1"
        assert (await rfb_banner(endpoint["listen"], endpoint["port"])).startswith(b"RFB 003.")

        # Reinstalled from another image (a copy of the guest's disk, same kernel): the
        # root disk is made afresh on that image's file.
        disk = host_dir / "disks" / f"{instance_id}.qcow2"
        assert backing_of(disk) == str(guest.disk)
        # Its files are in a pool of their own (the host's own ``<state>/images``): an
        # image's disk, kernel and initrd are all files of the image's pool.
        copies = host_dir / "images"
        copies.mkdir()
        for made in (guest.disk, guest.kernel, guest.initrd):
            shutil.copyfile(made, copies / made.name)
            (copies / made.name).chmod(0o644)
        copies.chmod(0o755)
        copy = copies / "busybox-copy.qcow2"
        (copies / guest.disk.name).rename(copy)
        first_pool = await (await api.admin.get(f"/v1/admin/image-pools/{booted.pool_id}")).json()
        copies_pool = await create(
            api,
            "/v1/admin/image-pools",
            {
                "region_id": first_pool["region_id"],
                "name": "copies",
                "backend": "qcow2",
                "location": str(copies),
            },
        )
        other = await create(
            api,
            "/v1/admin/images",
            {
                "name": "busybox-copy",
                "pool_id": copies_pool,
                "location": str(copy),
                "kernel": str(copies / guest.kernel.name),
                "initrd": str(copies / guest.initrd.name),
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


async def test_a_password_reset_reaches_the_shadow_file_of_a_real_guest(
    api: Api,
    nats_url: str,
    tmp_path: Path,
    libvirt_uri: str,
    guest: GuestImage,
    host_dir: Path,
) -> None:
    async with booted_guest(
        api, nats_url, tmp_path, libvirt_uri, guest, host_dir, "qemu-passwords"
    ) as booted:
        instance_id, owner, serial = booted.instance_id, booted.owner, booted.serial
        print(f"guest up {booted.boot_seconds:.1f} s after running")
        # The guest prints its shadow file at boot: no password is set yet.
        assert f"{SHADOW_MARKER} root:*:" in await asyncio.to_thread(console, serial)
        async with asyncio.timeout(10):
            while not await asyncio.to_thread(agent_connected, libvirt_uri, instance_id):
                await asyncio.sleep(0.1)

        resetting = time.monotonic()
        password = "correct horse battery staple"
        hashed, outcome = await reset_password(api, owner, instance_id, {"password": password})
        view = await wait_status(api, owner, instance_id, "running")
        assert outcome == "PasswordReset", view["error"]
        assert view["error"] is None
        salt = hashed.split("$")[2]
        assert await sha512_crypt(password, salt=salt) == hashed
        # chpasswd -e in the guest wrote exactly the platform's hash for root.
        try:
            await wait_for_line(serial, f"{SHADOW_MARKER} root:{hashed}:", 15)
        except TimeoutError:
            log = await asyncio.to_thread(console, serial)
            pytest.fail(f"the guest's /etc/shadow never took {hashed}; its console:\n{log}")
        print(f"password reset in the guest in {time.monotonic() - resetting:.1f} s")

        # A user the guest does not have: its chpasswd refuses, the agent says so.
        shown = (await asyncio.to_thread(console, serial)).count(SHADOW_MARKER)
        _, outcome = await reset_password(
            api, owner, instance_id, {"password": password, "user": "nobody"}
        )
        assert outcome == "PasswordResetFailed"
        async with asyncio.timeout(15):
            while not (view := await wait_status(api, owner, instance_id, "running"))["error"]:
                await asyncio.sleep(0.2)
        assert "set user password" in view["error"], view["error"]
        print(f"password reset of a user the guest lacks: {view['error']}")
        await asyncio.sleep(0.5)  # two turns of the guest's shadow watch
        assert (await asyncio.to_thread(console, serial)).count(SHADOW_MARKER) == shown
        assert domain_state(libvirt_uri, instance_id) == libvirt.VIR_DOMAIN_RUNNING
