"""A real guest through API → scheduler → NATS → hostd → libvirt ``qemu:///system`` (TCG).

The guest is Debian's cloud kernel with a busybox initramfs (tests/support/guest_image.py),
booted directly from the image's kernel and initrd. It prints its instance id on the serial
console once up, and powers off on the ACPI button, so a stop is a real graceful shutdown.

Needs root: the test starts virtlogd and libvirtd itself when ``qemu:///system`` does not
answer, and fails (never skips) when they cannot be made to work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import libvirt
import pytest

from gateways.settings import Settings
from hostd.main import run_hostd
from tests.api.compute_world import compute_world, register_guest
from tests.api.conftest import Api
from tests.api.conftest import api as api  # the platform fixture, for this test
from tests.api.conftest import platform_overrides as platform_overrides  # which it needs
from tests.api.test_compute_e2e import act, wait_status
from tests.support.guest_image import MARKER, POWEROFF_MARKER, GuestImage, cache_dir, guest_image
from tests.support.libvirtd import LibvirtdUnavailable, running_libvirtd

log = logging.getLogger(__name__)

BOOT_BUDGET = 45.0
"""Seconds from ``running`` to the marker: about 3 s under TCG, generous for a loaded CI."""


@pytest.fixture(scope="module")
def libvirt_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root: starts libvirtd and QEMU guests under qemu:///system")
    problem = ""
    try:
        with running_libvirtd(tmp_path_factory.mktemp("libvirtd")) as uri:
            yield uri
    except LibvirtdUnavailable as error:
        problem = str(error)
    if problem:
        pytest.fail(f"libvirtd cannot run on this machine: {problem}", pytrace=False)


@pytest.fixture(scope="module")
def guest() -> GuestImage:
    try:
        return guest_image()
    except RuntimeError as error:
        pytest.fail(f"cannot build the test guest: {error}", pytrace=False)


@pytest.fixture
def host_dir() -> Iterator[Path]:
    """A host state dir QEMU (running as libvirt-qemu) can reach, unlike pytest's tmp_path."""
    parent = cache_dir() / "hosts"
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=parent))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextlib.asynccontextmanager
async def hostd(nats_url: str, host_id: str, settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_hostd(nats_url, host_id, stop, settings, every=0.5))
    try:
        yield
    finally:
        stop.set()
        done, _ = await asyncio.wait([daemon], timeout=3)
        if not done:
            daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon


def remove_domain(uri: str, name: str) -> None:
    """Whatever the test left behind on the real hypervisor goes."""
    conn = libvirt.open(uri)
    try:
        domain = conn.lookupByName(name)
        if domain.isActive():
            domain.destroy()
        domain.undefine()
    except libvirt.libvirtError:
        pass  # already gone
    finally:
        conn.close()


def domain_state(uri: str, name: str) -> int | None:
    conn = libvirt.open(uri)
    try:
        return int(conn.lookupByName(name).state()[0])
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


def console(path: Path) -> str:
    """What the guest wrote on its serial console so far."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


async def wait_for_line(path: Path, text: str, timeout: float) -> float:
    """Seconds until ``text`` shows up in ``path``."""
    started = time.monotonic()
    async with asyncio.timeout(timeout):
        while text not in await asyncio.to_thread(console, path):
            await asyncio.sleep(0.1)
    return time.monotonic() - started


async def test_a_real_guest_boots_stops_and_is_deleted(
    api: Api,
    nats_url: str,
    tmp_path: Path,
    libvirt_uri: str,
    guest: GuestImage,
    host_dir: Path,
) -> None:
    world = await compute_world(api, vcpus=1)
    _, image_id = await register_guest(api, world.region_id, guest)
    settings = Settings(
        host_driver="libvirt",
        libvirt_uri=libvirt_uri,
        libvirt_domain_type="qemu",  # TCG: nested KVM here hangs guests (INFRA-NOTES)
        state_dir=tmp_path,
        host_state_dir=host_dir,
        host_image_pools=(guest.disk.parent,),
    )
    owner = await api.tenant("qemu")
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
            requested = time.monotonic()
            running = await wait_status(api, owner, instance_id, "running")
            assert running["host_id"] == world.host_id
            assert domain_state(libvirt_uri, instance_id) == libvirt.VIR_DOMAIN_RUNNING

            serial = host_dir / "serial" / f"{instance_id}.log"
            # The guest reads its instance id from the SMBIOS serial number libvirt gives it.
            boot = await wait_for_line(serial, f"{MARKER} {instance_id}", BOOT_BUDGET)
            log.info(
                "guest up %.1f s after the create (%.1f s after running)",
                time.monotonic() - requested,
                boot,
            )

            stopping = time.monotonic()
            await act(api, owner, instance_id, "stop")
            await wait_status(api, owner, instance_id, "stopped")
            log.info("stopped through the API in %.1f s", time.monotonic() - stopping)
            assert domain_state(libvirt_uri, instance_id) == libvirt.VIR_DOMAIN_SHUTOFF
            # A graceful ACPI poweroff, not the driver's destroy after its grace period.
            assert POWEROFF_MARKER in await asyncio.to_thread(console, serial)

            await act(api, owner, instance_id, "delete")
            await wait_status(api, owner, instance_id, "recycled")
            await act(api, owner, instance_id, "purge")
            await wait_status(api, owner, instance_id, "purged")
            # The purge reaches the host after the API answers: the domain and disk go.
            async with asyncio.timeout(15):
                while domain_state(libvirt_uri, instance_id) is not None:
                    await asyncio.sleep(0.1)
                while (host_dir / "disks" / f"{instance_id}.qcow2").exists():
                    await asyncio.sleep(0.1)
        finally:
            if instance_id:
                remove_domain(libvirt_uri, instance_id)
