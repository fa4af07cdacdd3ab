"""One contract for every compute driver: libvirt's test:///default and the simulated one."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import msgspec
import pytest

from hostd.drivers.compute.port import (
    ComputeDriver,
    DriverError,
    InstanceSpec,
    MigrationTarget,
    Nic,
    PowerState,
)
from hostd.drivers.compute.simulated import SimulatedCompute

_counter = itertools.count()


def spec(**changes: object) -> InstanceSpec:
    fields: dict[str, object] = {
        "instance_id": f"i-contract{next(_counter):018d}",
        "vcpus": 1,
        "memory_mb": 128,
        "disk_path": "/var/lib/scloud/disks/root.qcow2",
        "nics": (Nic("52:54:00:12:34:56", "tap-contract0"),),
    }
    fields.update(changes)
    return InstanceSpec(**fields)  # type: ignore[arg-type]


@pytest.fixture(params=["libvirt-test", "simulated"])
async def driver(request: pytest.FixtureRequest) -> AsyncIterator[ComputeDriver]:
    if request.param == "simulated":
        yield SimulatedCompute()
        return
    from hostd.drivers.compute.libvirt import LibvirtCompute

    # test:///default is shared per process; every test uses fresh instance ids.
    compute = LibvirtCompute("test:///default", domain_type="test", graceful_stop_seconds=1)
    yield compute
    await compute.close()


async def test_a_defined_instance_is_stopped_until_started(driver: ComputeDriver) -> None:
    wanted = spec()
    assert await driver.state(wanted.instance_id) == PowerState.ABSENT
    await driver.define(wanted)
    assert await driver.state(wanted.instance_id) == PowerState.STOPPED
    await driver.start(wanted.instance_id)
    assert await driver.state(wanted.instance_id) == PowerState.RUNNING


async def test_every_ensure_is_idempotent(driver: ComputeDriver) -> None:
    wanted = spec()
    for _ in range(2):
        await driver.define(wanted)
    for _ in range(2):
        await driver.start(wanted.instance_id)
    assert await driver.state(wanted.instance_id) == PowerState.RUNNING
    for _ in range(2):
        await driver.stop(wanted.instance_id)
    assert await driver.state(wanted.instance_id) == PowerState.STOPPED
    for _ in range(2):
        await driver.undefine(wanted.instance_id)
    assert await driver.state(wanted.instance_id) == PowerState.ABSENT


async def test_starting_an_undefined_instance_fails_with_a_cause(driver: ComputeDriver) -> None:
    with pytest.raises(DriverError, match=r"not defined|no domain|not found"):
        await driver.start("i-contractnothere000000000000")


async def test_undefining_a_running_instance_stops_it_first(driver: ComputeDriver) -> None:
    wanted = spec()
    await driver.define(wanted)
    await driver.start(wanted.instance_id)
    await driver.undefine(wanted.instance_id)
    assert await driver.state(wanted.instance_id) == PowerState.ABSENT
    assert wanted.instance_id not in await driver.observed()


async def test_reboot_needs_a_running_instance(driver: ComputeDriver) -> None:
    wanted = spec()
    await driver.define(wanted)
    with pytest.raises(DriverError):
        await driver.reboot(wanted.instance_id)
    await driver.start(wanted.instance_id)
    await driver.reboot(wanted.instance_id)
    assert await driver.state(wanted.instance_id) == PowerState.RUNNING


async def test_forced_stop_and_observed_states(driver: ComputeDriver) -> None:
    running, stopped = spec(), spec()
    for wanted in (running, stopped):
        await driver.define(wanted)
    await driver.start(running.instance_id)
    await driver.start(stopped.instance_id)
    await driver.stop(stopped.instance_id, force=True)
    observed = await driver.observed()
    assert observed[running.instance_id] == PowerState.RUNNING
    assert observed[stopped.instance_id] == PowerState.STOPPED


async def test_console_only_while_running(driver: ComputeDriver) -> None:
    wanted = spec()
    await driver.define(wanted)
    assert await driver.console(wanted.instance_id) is None
    await driver.start(wanted.instance_id)
    # libvirt's test driver never allocates a VNC port; the contract only asks for None
    # when stopped and an address or None when running.
    address = await driver.console(wanted.instance_id)
    assert address is None or address.port >= 5900


# -- migration and guest passwords ----------------------------------------------------

PASSWORD_HASH = (
    "$6$u7PXEUGbdTwt2y5c$jpFP3d825LbE./nVcDZrnjF2pZf2rARyYRcNTKmHfr05fwV4j1yovLa4vFfQ4U3Tay"
    "gphCKdoTzHEC2sFd45W."
)
NOWHERE = MigrationTarget("hst-nowhere", "nowhere.invalid")


async def test_a_password_is_set_from_its_hash_in_a_running_guest_only(
    driver: ComputeDriver,
) -> None:
    wanted = spec()
    await driver.define(wanted)
    with pytest.raises(DriverError, match="not running"):
        await driver.set_password(wanted.instance_id, "root", PASSWORD_HASH)
    await driver.start(wanted.instance_id)
    await driver.set_password(wanted.instance_id, "root", PASSWORD_HASH)
    await driver.set_password(wanted.instance_id, "root", PASSWORD_HASH)  # a repeat is fine
    assert await driver.state(wanted.instance_id) == PowerState.RUNNING
    if isinstance(driver, SimulatedCompute):
        assert driver.passwords[wanted.instance_id] == {"root": PASSWORD_HASH}


async def test_a_migration_that_cannot_happen_leaves_the_guest_as_it_was(
    driver: ComputeDriver,
) -> None:
    # libvirt's test driver cannot migrate at all; the simulated one cannot reach NOWHERE.
    running, stopped = spec(), spec()
    for wanted in (running, stopped):
        await driver.define(wanted)
    await driver.start(running.instance_id)
    with pytest.raises(DriverError):
        await driver.migrate(running.instance_id, NOWHERE, live=True)
    with pytest.raises(DriverError):
        await driver.migrate(stopped.instance_id, NOWHERE, live=False)
    observed = await driver.observed()
    assert observed[running.instance_id] == PowerState.RUNNING
    assert observed[stopped.instance_id] == PowerState.STOPPED


async def test_live_migration_needs_a_running_guest_and_cold_a_stopped_one(
    driver: ComputeDriver,
) -> None:
    wanted = spec()
    await driver.define(wanted)
    with pytest.raises(DriverError, match="running"):
        await driver.migrate(wanted.instance_id, NOWHERE, live=True)
    await driver.start(wanted.instance_id)
    with pytest.raises(DriverError, match="stopped"):
        await driver.migrate(wanted.instance_id, NOWHERE, live=False)
    assert await driver.state(wanted.instance_id) == PowerState.RUNNING


async def test_migrating_a_guest_this_host_never_had_fails_with_a_cause(
    driver: ComputeDriver,
) -> None:
    with pytest.raises(DriverError, match=r"not defined|no domain|not found"):
        await driver.migrate("i-contractnothere000000000000", NOWHERE, live=True)


@pytest.fixture(params=["simulated"])
def peers(request: pytest.FixtureRequest) -> tuple[SimulatedCompute, SimulatedCompute]:
    """Two hypervisors that can reach each other. Only the simulated driver: libvirt's
    test:///default is one in-process hypervisor that cannot migrate (peer-to-peer is
    unsupported there); the real path needs two libvirtd."""
    fleet: dict[str, SimulatedCompute] = {}
    fleet["hst-a"] = SimulatedCompute("hst-a", peers=fleet)
    fleet["hst-b"] = SimulatedCompute("hst-b", peers=fleet)
    return fleet["hst-a"], fleet["hst-b"]


async def test_a_live_migration_keeps_the_guest_running_on_the_target(
    peers: tuple[SimulatedCompute, SimulatedCompute],
) -> None:
    source, target = peers
    wanted = spec()
    await source.define(wanted)
    await source.start(wanted.instance_id)
    await source.set_password(wanted.instance_id, "root", PASSWORD_HASH)
    there = MigrationTarget("hst-b", "b.example")
    for _ in range(2):  # a repeat finds it moved already
        await source.migrate(wanted.instance_id, there, live=True)
    assert await source.state(wanted.instance_id) == PowerState.ABSENT
    assert await target.state(wanted.instance_id) == PowerState.RUNNING
    assert target.specs[wanted.instance_id] == wanted
    assert target.passwords[wanted.instance_id] == {"root": PASSWORD_HASH}


async def test_a_cold_migration_arrives_stopped(
    peers: tuple[SimulatedCompute, SimulatedCompute],
) -> None:
    source, target = peers
    wanted = spec()
    await source.define(wanted)
    await source.migrate(wanted.instance_id, MigrationTarget("hst-b", "b.example"), live=False)
    assert await source.state(wanted.instance_id) == PowerState.ABSENT
    assert await target.state(wanted.instance_id) == PowerState.STOPPED


async def test_a_running_guest_grows_its_vcpus_live_within_its_room(
    driver: ComputeDriver,
) -> None:
    wanted = spec(vcpus=1, memory_mb=512, max_vcpus=4, max_memory_mb=2048)
    await driver.define(wanted)
    with pytest.raises(DriverError, match="not running"):
        await driver.resize(wanted.instance_id, vcpus=2, memory_mb=512)
    await driver.start(wanted.instance_id)
    assert await driver.size(wanted.instance_id) == (1, 512)
    for _ in range(2):  # a repeated command is harmless
        await driver.resize(wanted.instance_id, vcpus=3, memory_mb=512)
        assert await driver.size(wanted.instance_id) == (3, 512)
    assert await driver.state(wanted.instance_id) == PowerState.RUNNING


@pytest.mark.parametrize(
    ("vcpus", "memory_mb", "cause"),
    [(1, 512, "cannot shrink"), (5, 1024, "past the 4"), (2, 4096, "past the 2048")],
)
async def test_a_live_resize_never_shrinks_nor_passes_the_room_and_keeps_the_size(
    driver: ComputeDriver, vcpus: int, memory_mb: int, cause: str
) -> None:
    wanted = spec(vcpus=2, memory_mb=1024, max_vcpus=4, max_memory_mb=2048)
    await driver.define(wanted)
    await driver.start(wanted.instance_id)
    with pytest.raises(DriverError, match=cause):
        await driver.resize(wanted.instance_id, vcpus=vcpus, memory_mb=memory_mb)
    assert await driver.size(wanted.instance_id) == (2, 1024)
    assert await driver.state(wanted.instance_id) == PowerState.RUNNING


async def test_a_guest_defined_without_room_cannot_grow_live(driver: ComputeDriver) -> None:
    wanted = spec(vcpus=2, memory_mb=1024)
    await driver.define(wanted)
    await driver.start(wanted.instance_id)
    with pytest.raises(DriverError, match="past the 2"):
        await driver.resize(wanted.instance_id, vcpus=3, memory_mb=1024)
    assert await driver.size(wanted.instance_id) == (2, 1024)


async def test_memory_grows_live_or_the_guest_keeps_its_size(driver: ComputeDriver) -> None:
    """DIMM hot-add is QEMU's (tests/integration/test_qemu_resize.py proves it on a real
    guest); libvirt's test driver has no device attach, so there the refusal must be clean:
    a cause, and the guest as it was, for the platform to restart it at the new size."""
    wanted = spec(vcpus=1, memory_mb=512, max_vcpus=4, max_memory_mb=2048)
    await driver.define(wanted)
    await driver.start(wanted.instance_id)
    try:
        await driver.resize(wanted.instance_id, vcpus=2, memory_mb=1024)
    except DriverError as refused:
        assert str(refused)
        assert await driver.size(wanted.instance_id) == (1, 512)
    else:
        assert await driver.size(wanted.instance_id) == (2, 1024)
    assert await driver.state(wanted.instance_id) == PowerState.RUNNING


async def test_a_restart_after_a_live_resize_runs_the_definition(driver: ComputeDriver) -> None:
    wanted = spec(vcpus=1, memory_mb=512, max_vcpus=4, max_memory_mb=2048)
    await driver.define(wanted)
    await driver.start(wanted.instance_id)
    await driver.resize(wanted.instance_id, vcpus=2, memory_mb=512)
    await driver.stop(wanted.instance_id, force=True)
    bigger = msgspec.structs.replace(wanted, vcpus=3, memory_mb=1024)
    await driver.define(bigger)
    await driver.start(wanted.instance_id)
    assert await driver.size(wanted.instance_id) == (3, 1024)
