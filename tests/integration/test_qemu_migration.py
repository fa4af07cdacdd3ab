"""Real migrations under libvirt (TCG), through API → scheduler → NATS → two hostd.

Host A is this machine's ``qemu:///system``; host B is a second libvirtd posing as another
machine (tests/support/peer_libvirtd.py). The operator's migrate command claims B, B
prepares the disk, A's libvirtd migrates the guest peer to peer with its disk's top layer
(live: running; cold: stopped by ACPI first, moved started-paused, started again on B);
the guest then runs on B: its console answers there, and it powers off on B's ACPI button
when stopped through the API.

Needs root, like tests/integration/test_qemu_boot.py (whose fixtures it shares).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import libvirt
import msgspec
import pytest

from gateways.settings import Settings
from tests.api.compute_world import CAPACITY, compute_world, create, register_guest
from tests.api.conftest import Api, platform_overrides
from tests.api.conftest import api as api  # the platform fixture, for this test
from tests.api.test_compute_e2e import wait_status
from tests.integration.test_qemu_boot import (
    BOOT_BUDGET,
    console,
    domain_state,
    guest,
    hostd,
    libvirt_uri,
    remove_domain,
    wait_for_line,
)
from tests.integration.test_qemu_guest_actions import rfb_banner
from tests.support.guest_image import MARKER, POWEROFF_MARKER, GuestImage, cache_dir
from tests.support.libvirtd import LibvirtdUnavailable
from tests.support.peer_libvirtd import peer_libvirtd

__all__ = ["api", "guest", "libvirt_uri", "platform_overrides"]  # shared fixtures

PEER_PORT = 16599


def host_dir(parent: Path) -> Path:
    path = Path(tempfile.mkdtemp(dir=parent))
    path.chmod(0o755)
    for sub in ("disks", "serial"):
        (path / sub).mkdir()
    return path


@pytest.fixture
def two_dirs() -> Iterator[tuple[Path, Path]]:
    """Host A's and host B's state directories, where QEMU can reach them."""
    parent = cache_dir() / "hosts"
    parent.mkdir(parents=True, exist_ok=True)
    a, b = host_dir(parent), host_dir(parent)
    yield a, b
    shutil.rmtree(a, ignore_errors=True)
    shutil.rmtree(b, ignore_errors=True)


@pytest.fixture
def peer_uri(libvirt_uri: str, two_dirs: tuple[Path, Path], tmp_path: Path) -> Iterator[str]:
    a, b = two_dirs
    binds = {b / "disks": a / "disks", b / "serial": a / "serial"}
    problem = ""
    try:
        with peer_libvirtd(tmp_path / "peer", PEER_PORT, binds) as uri:
            yield uri
    except LibvirtdUnavailable as error:
        problem = str(error)
    if problem:
        pytest.fail(f"a second libvirtd cannot run here: {problem}", pytrace=False)


@pytest.mark.parametrize("live", [True, False], ids=["live", "cold"])
async def test_a_running_guest_migrates_to_another_libvirtd(
    live: bool,
    api: Api,
    nats_url: str,
    tmp_path: Path,
    libvirt_uri: str,
    peer_uri: str,
    guest: GuestImage,
    two_dirs: tuple[Path, Path],
) -> None:
    a_dir, b_dir = two_dirs
    world = await compute_world(api, vcpus=1)
    # Named by address: libvirt takes a "localhost" destination for this very host.
    host_b = await create(
        api,
        "/v1/admin/hosts",
        {"cluster_id": world.cluster_id, "hostname": "127.0.0.1", "capacity": CAPACITY},
    )
    _, image_id = await register_guest(api, world.region_id, guest)
    # TCG: nested KVM here hangs guests (INFRA-NOTES).
    base = Settings(
        host_driver="libvirt",
        libvirt_domain_type="qemu",
        state_dir=tmp_path,
        host_image_pools=(guest.disk.parent,),
    )
    on_a = msgspec.structs.replace(
        base,
        libvirt_uri=libvirt_uri,
        host_state_dir=a_dir,
        libvirt_peer_uri=f"qemu+tcp://{{hostname}}:{PEER_PORT}/system",
    )
    on_b = msgspec.structs.replace(base, libvirt_uri=peer_uri, host_state_dir=b_dir)
    owner = await api.tenant("qemu-migrants")
    instance_id = ""
    await api.settled(await api.admin.post(f"/v1/admin/hosts/{host_b}/actions/disable"))
    async with hostd(nats_url, world.host_id, on_a), hostd(nats_url, host_b, on_b):
        await api.platform.host_health.start()
        async with asyncio.timeout(60):
            while not all(api.platform.host_health.health(h)[0] for h in (world.host_id, host_b)):
                await asyncio.sleep(0.1)
        try:
            created = await api.settled(
                await owner.post(
                    "/v1/instances",
                    json={
                        "name": "migrant",
                        "region_id": world.region_id,
                        "flavor_id": world.flavor_id,
                        "image_id": image_id,
                    },
                )
            )
            instance_id = created["instance_ids"][0]
            running = await wait_status(api, owner, instance_id, "running")
            assert running["host_id"] == world.host_id
            await wait_for_line(a_dir / "serial" / f"{instance_id}.log", MARKER, BOOT_BUDGET)
            await api.settled(await api.admin.post(f"/v1/admin/hosts/{host_b}/actions/enable"))

            asked = time.monotonic()
            await api.settled(
                await api.admin.post(
                    f"/v1/admin/instances/{instance_id}/actions/migrate", json={"live": live}
                )
            )
            async with asyncio.timeout(120):
                while True:
                    view = await wait_status(api, owner, instance_id, "running")
                    assert view["error"] is None, view["error"]
                    if view["host_id"] == host_b:
                        break
                    await asyncio.sleep(0.2)
            took = time.monotonic() - asked
            kind = "live" if live else "cold"
            print(f"{kind} migration under TCG: {took:.1f} s, request to running")
            serial_b = b_dir / "serial" / f"{instance_id}.log"
            if not live:  # stopped on A, moved, started on B: it boots there afresh
                await wait_for_line(serial_b, f"{MARKER} {instance_id}", BOOT_BUDGET)
            assert domain_state(peer_uri, instance_id) == libvirt.VIR_DOMAIN_RUNNING
            assert domain_state(libvirt_uri, instance_id) is None  # gone from A
            assert not (a_dir / "disks" / f"{instance_id}.qcow2").exists()
            assert (b_dir / "disks" / f"{instance_id}.qcow2").exists()
            hosts = {
                h: (await (await api.admin.get(f"/v1/admin/hosts/{h}")).json())["instances"]
                for h in (world.host_id, host_b)
            }
            assert hosts == {world.host_id: 0, host_b: 1}

            path = f"/v1/instances/{instance_id}/console"
            async with asyncio.timeout(20):
                while (answer := await owner.get(path)).status != 200:
                    await asyncio.sleep(0.1)
            endpoint = await answer.json()
            assert endpoint["host_id"] == host_b
            assert (await rfb_banner(endpoint["listen"], endpoint["port"])).startswith(b"RFB ")

            # The guest lives on B: B's ACPI button powers it off, on B's serial console.
            await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
            await wait_status(api, owner, instance_id, "stopped")
            assert POWEROFF_MARKER in await asyncio.to_thread(console, serial_b)
        finally:
            if instance_id:
                remove_domain(libvirt_uri, instance_id)
                remove_domain(peer_uri, instance_id)
