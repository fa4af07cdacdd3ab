"""Reinstall, set-password and migrate through a host daemon over real NATS: under libvirt's
test:///default with real qcow2 disks, and between two simulated hypervisors."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
from nats.aio.client import Client

from gateways.bus import hostwire
from gateways.bus.hostwire import Action, GuestPassword, HostOutcome, MigrationOrder
from gateways.bus.hostwire import PowerState as WireState
from hostd.apply import Host, HostLayout
from hostd.drivers.compute.port import PowerState
from hostd.drivers.compute.simulated import SimulatedCompute
from hostd.runner import HostRunner
from hostd.storage.simulated import SimulatedStorage
from hostd.streams import HostBus
from tests.hostd.test_compute_contract import PASSWORD_HASH
from tests.hostd.test_daemon import HOST, _make_image, guest, image, libvirt_host
from tests.hostd.world import Running, command, instance_id, send, wait_outcomes

__all__ = ["image", "libvirt_host"]  # the fixtures, shared with the daemon tests


def backing_of(disk: Path) -> str:
    info = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(disk)],
        check=True,
        capture_output=True,
        text=True,
    )
    return str(json.loads(info.stdout)["backing-filename"])


async def test_reinstall_password_and_a_failed_migration_under_libvirt(
    nc: Client, bus: HostBus, libvirt_host: Host, image: Path, tmp_path: Path
) -> None:
    other = tmp_path / "images" / "other.qcow2"
    _make_image(other)
    daemon = await Running(nc, libvirt_host, bus).start()
    try:
        instance = instance_id()
        disk = tmp_path / "host" / "disks" / f"{instance}.qcow2"
        await send(nc, bus, command(HOST, instance, Action.ENSURE_RUNNING, guest(image)))
        await wait_outcomes(nc, bus, 1)
        assert backing_of(disk) == str(image)

        reinstall = command(HOST, instance, Action.REINSTALL, guest(other), start=True)
        await send(nc, bus, reinstall)
        [_, rebuilt] = await wait_outcomes(nc, bus, 2)
        assert (rebuilt.step_id, rebuilt.ok, rebuilt.state) == (
            reinstall.step_id,
            True,
            WireState.RUNNING,
        )
        assert backing_of(disk) == str(other)

        password = msgspec.structs.replace(
            command(HOST, instance, Action.SET_PASSWORD),
            password=GuestPassword(user="root", hash=PASSWORD_HASH),
        )
        await send(nc, bus, password)
        [*_, set_password] = await wait_outcomes(nc, bus, 3)
        assert (set_password.ok, set_password.error) == (True, None)

        # libvirt's test driver cannot migrate: the guest stays, running, with its disk.
        move = msgspec.structs.replace(
            command(HOST, instance, Action.MIGRATE),
            migration=MigrationOrder(
                target_host_id="hst-peer", target_hostname="peer.invalid", live=True
            ),
        )
        await send(nc, bus, move)
        [*_, moved] = await wait_outcomes(nc, bus, 4)
        assert moved.ok is False and moved.state == WireState.RUNNING
        assert moved.error and "not supported" in moved.error
        assert disk.exists()
        assert await libvirt_host.compute.state(instance) == PowerState.RUNNING

        # Stopped, a reinstall leaves it stopped.
        await send(nc, bus, command(HOST, instance, Action.ENSURE_STOPPED, force=True))
        await send(nc, bus, command(HOST, instance, Action.REINSTALL, guest(image)))
        [*_, stopped] = await wait_outcomes(nc, bus, 6)
        assert (stopped.ok, stopped.state) == (True, WireState.STOPPED)
        assert backing_of(disk) == str(image)

        # As a migration's target: the disk only, an overlay on the same image, no domain.
        arriving = instance_id()
        await send(
            nc, bus, command(HOST, arriving, Action.PREPARE_MIGRATION, guest(image, disk_gb=2))
        )
        [*_, prepared] = await wait_outcomes(nc, bus, 7)
        assert (prepared.ok, prepared.state) == (True, WireState.ABSENT)
        assert backing_of(disk.with_name(f"{arriving}.qcow2")) == str(image)
    finally:
        await daemon.close()


async def test_a_migration_between_simulated_hosts(nc: Client, bus: HostBus) -> None:
    peers: dict[str, SimulatedCompute] = {}
    source = peers["h1"] = SimulatedCompute("h1", peers=peers)
    target = peers["h2"] = SimulatedCompute("h2", peers=peers)
    storage = SimulatedStorage()
    host = Host(HOST, source, storage, HostLayout(Path("/sim") / HOST))
    daemon = await Running(nc, host, bus).start()
    try:
        live, cold = instance_id(), instance_id()
        for instance in (live, cold):
            await send(nc, bus, command(HOST, instance, Action.ENSURE_RUNNING, guest()))
        await wait_outcomes(nc, bus, 2)
        for instance, is_live in ((live, True), (cold, False)):
            await send(
                nc,
                bus,
                msgspec.structs.replace(
                    command(HOST, instance, Action.MIGRATE),
                    migration=MigrationOrder(
                        target_host_id="h2", target_hostname="h2.example", live=is_live
                    ),
                ),
            )
        results = await wait_outcomes(nc, bus, 4)
        assert [(o.ok, o.state) for o in results[2:]] == [(True, WireState.ABSENT)] * 2
        assert target.states == {live: PowerState.RUNNING, cold: PowerState.STOPPED}
        assert source.states == {} and storage.disks == {}
    finally:
        await daemon.close()


class _Sequence:
    def __init__(self, stream: int) -> None:
        self.stream = stream


class _Metadata:
    def __init__(self, stream: int) -> None:
        self.sequence = _Sequence(stream)


class _Delivered:
    """A delivered command as the runner sees one: its data, its stream sequence, its ack."""

    def __init__(self, data: bytes, stream: int) -> None:
        self.data = data
        self.metadata = _Metadata(stream)
        self.acks = 0

    async def ack_sync(self, timeout: float = 5.0) -> None:
        self.acks += 1


class _Kept:
    def __init__(self) -> None:
        self.outcomes: list[HostOutcome] = []

    async def publish(self, outcome: HostOutcome) -> None:
        self.outcomes.append(outcome)


async def test_a_redelivered_reinstall_is_answered_without_rebuilding_the_disk_again() -> None:
    compute = SimulatedCompute(HOST)
    storage = SimulatedStorage()
    kept = _Kept()
    runner = HostRunner(Host(HOST, compute, storage, HostLayout(Path("/sim") / HOST)), kept)
    instance = instance_id()
    build = command(HOST, instance, Action.ENSURE_RUNNING, guest())
    reinstall = command(HOST, instance, Action.REINSTALL, guest("/images/other.qcow2"), start=True)
    await runner.accept(_Delivered(hostwire.encode(build), 1))  # type: ignore[arg-type]
    first = _Delivered(hostwire.encode(reinstall), 2)
    await runner.accept(first)  # type: ignore[arg-type]
    made = storage.disks[instance]
    await storage.delete_root_disk(instance)  # a second rebuild would make it again
    again = _Delivered(hostwire.encode(reinstall), 2)  # the same message: its ack was lost
    await runner.accept(again)  # type: ignore[arg-type]
    assert instance not in storage.disks and made.image_location == "/images/other.qcow2"
    steps = [o.step_id for o in kept.outcomes]
    assert steps == [build.step_id, reinstall.step_id, reinstall.step_id]
    assert kept.outcomes[-1].ok and (first.acks, again.acks) == (1, 1)


async def test_a_reinstall_redelivered_to_a_restarted_daemon_keeps_its_disk() -> None:
    """The daemon dies after rebuilding but before its ack: a new one (with nothing in
    memory) gets the same message and finds the disk that step made, with the guest's
    writes since, instead of wiping it again."""
    compute = SimulatedCompute(HOST)
    storage = SimulatedStorage()
    host = Host(HOST, compute, storage, HostLayout(Path("/sim") / HOST))
    instance = instance_id()
    build = command(HOST, instance, Action.ENSURE_RUNNING, guest())
    reinstall = command(HOST, instance, Action.REINSTALL, guest("/images/other.qcow2"), start=True)
    first = HostRunner(host, _Kept())
    await first.accept(_Delivered(hostwire.encode(build), 1))  # type: ignore[arg-type]
    await first.accept(_Delivered(hostwire.encode(reinstall), 2))  # type: ignore[arg-type]
    rebuilt = storage.disks[instance]
    assert rebuilt.made_by == reinstall.step_id

    kept = _Kept()
    restarted = HostRunner(host, kept)
    again = _Delivered(hostwire.encode(reinstall), 2)
    await restarted.accept(again)  # type: ignore[arg-type]
    assert storage.disks[instance] is rebuilt, "the disk the step made is kept"
    assert kept.outcomes[-1].ok and kept.outcomes[-1].state == WireState.RUNNING
    assert compute.states[instance] == PowerState.RUNNING and again.acks == 1

    other = command(HOST, instance, Action.REINSTALL, guest("/images/third.qcow2"), start=True)
    await restarted.accept(_Delivered(hostwire.encode(other), 3))  # type: ignore[arg-type]
    assert storage.disks[instance].image_location == "/images/third.qcow2", "a new step rebuilds"


async def test_a_migration_delivered_after_its_deadline_is_answered_and_not_applied() -> None:
    """A daemon back after the platform gave the move up must not carry the guest off."""
    peers: dict[str, SimulatedCompute] = {}
    source, target = SimulatedCompute(HOST, peers), SimulatedCompute("hst-target", peers)
    peers.update({HOST: source, "hst-target": target})
    storage = SimulatedStorage()
    kept = _Kept()
    runner = HostRunner(Host(HOST, source, storage, HostLayout(Path("/sim") / HOST)), kept)
    instance = instance_id()
    await runner.accept(  # type: ignore[arg-type]
        _Delivered(hostwire.encode(command(HOST, instance, Action.ENSURE_RUNNING, guest())), 1)
    )
    order = MigrationOrder(target_host_id="hst-target", target_hostname="target", live=True)
    now = datetime.now(UTC)
    late = msgspec.structs.replace(
        command(HOST, instance, Action.MIGRATE),
        migration=order,
        expires_at=now - timedelta(seconds=1),
    )
    expired = _Delivered(hostwire.encode(late), 2)
    await runner.accept(expired)  # type: ignore[arg-type]
    answer = kept.outcomes[-1]
    assert (answer.step_id, answer.ok) == (late.step_id, False)
    assert "expired" in (answer.error or "") and expired.acks == 1
    assert source.states[instance] == PowerState.RUNNING and instance not in target.states

    in_time = msgspec.structs.replace(late, step_id="step-in-time", expires_at=now + timedelta(1))
    await runner.accept(_Delivered(hostwire.encode(in_time), 3))  # type: ignore[arg-type]
    assert kept.outcomes[-1].ok and target.states[instance] == PowerState.RUNNING
