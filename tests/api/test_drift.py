"""Drift healing: guests changed behind the platform's back are put back as they should be.

A simulated host (a real daemon over NATS, a simulated hypervisor) reports what it runs
every half second; the platform's drift healer compares that with the instances, appends
what differs as events and heals it by steps to the host, each audited as actor system:drift.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from api.services.deadlines import expire
from api.services.drift import DriftHealer
from domain import clock
from domain.inventory.host import Host
from gateways.bus.hostwire import ObservedState
from gateways.bus.hostwire import PowerState as Wire
from hostd.daemon import DaemonOptions
from hostd.drivers.compute.port import InstanceSpec, PowerState
from hostd.fleet import SimulatedFleet
from tests.api.compute_world import World, compute_world
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import audit, until

DRIFT = ("system", "drift", "compute:instance:drift", "succeeded")


class Place(msgspec.Struct):
    world: World
    fleet: SimulatedFleet
    owner: Caller


async def start_fleet(
    api: Api, nats_url: str, world: World, observe_every: float
) -> SimulatedFleet:
    fleet = SimulatedFleet(
        1,
        nats_url,
        host_ids=[world.host_id],
        heartbeat_every=0.5,
        options=DaemonOptions(observe_every=observe_every, ack_wait=5.0, drain_seconds=1.0),
    )
    await fleet.start()
    await api.platform.host_health.start()
    async with asyncio.timeout(15):
        while not api.platform.host_health.health(world.host_id)[0]:
            await asyncio.sleep(0.1)
    return fleet


@pytest.fixture
async def place(api: Api, nats_url: str) -> AsyncIterator[Place]:
    world = await compute_world(api)
    fleet = await start_fleet(api, nats_url, world, observe_every=0.5)
    try:
        yield Place(world, fleet, await api.tenant("drifters"))
    finally:
        await fleet.close()


@pytest.fixture
async def quiet(api: Api, nats_url: str) -> AsyncIterator[Place]:
    """A host that reports once, at its start: the test hands the healer its reports."""
    world = await compute_world(api)
    fleet = await start_fleet(api, nats_url, world, observe_every=3600.0)
    try:
        yield Place(world, fleet, await api.tenant("quiet"))
    finally:
        await fleet.close()


async def running_instance(api: Api, place: Place) -> str:
    instance_id = await create_instance(api, place)
    await until(api, place.owner, [instance_id], lambda v: v["status"] == "running", 30)
    return instance_id


async def create_instance(api: Api, place: Place) -> str:
    created = await api.settled(
        await place.owner.post(
            "/v1/instances",
            json={
                "name": "drifty",
                "region_id": place.world.region_id,
                "flavor_id": place.world.flavor_id,
                "image_id": place.world.image_id,
            },
        )
    )
    return str(created["instance_ids"][0])


async def events(api: Api, resource_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (e.topic.rsplit(".", 1)[-1], msgspec.json.decode(e.state))
        for e in await api.platform.store.read_stream(resource_id)
    ]


async def until_true(check: Any, seconds: float = 15) -> None:
    async with asyncio.timeout(seconds):
        while not check():
            await asyncio.sleep(0.05)


def steps_after_drift(seen: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The statuses the instance stepped through after its (last) drift was detected."""
    names = [name for name, _ in seen]
    at = len(names) - 1 - names[::-1].index("DriftDetected")
    return [state.get("status", name) for name, state in seen[at + 1 :]]


async def test_a_guest_killed_on_its_host_is_started_again(api: Api, place: Place) -> None:
    instance_id = await running_instance(api, place)
    compute = place.fleet.computes[place.world.host_id]
    compute.states[instance_id] = PowerState.STOPPED  # killed behind the platform's back

    await until_true(lambda: compute.states[instance_id] == PowerState.RUNNING)
    await until(api, place.owner, [instance_id], lambda v: v["status"] == "running", 10)
    seen = await events(api, instance_id)
    (drift,) = [state for name, state in seen if name == "DriftDetected"]
    assert drift["host_id"] == place.world.host_id
    assert (drift["observed"], drift["expected"], drift["action"]) == (
        "stopped",
        "running",
        "ensure_running",
    )
    # Truthful for billing: it went through starting, like any start of a stopped guest.
    assert steps_after_drift(seen)[0] == "starting" and seen[-1][0] in (
        "Reached",
        "ConsoleReported",
    )
    entries = await audit(api, instance_id)
    assert DRIFT in entries
    assert ("host", place.world.host_id, "compute:instance:outcome", "succeeded") in entries


async def test_a_vanished_guest_is_rebuilt(api: Api, place: Place) -> None:
    instance_id = await running_instance(api, place)
    compute = place.fleet.computes[place.world.host_id]
    await compute.undefine(instance_id)  # gone, definition and all

    await until_true(lambda: compute.states.get(instance_id) == PowerState.RUNNING)
    await until(api, place.owner, [instance_id], lambda v: v["status"] == "running", 10)
    seen = await events(api, instance_id)
    (drift,) = [state for name, state in seen if name == "DriftDetected"]
    assert (drift["observed"], drift["action"]) == ("absent", "rebuild")
    assert steps_after_drift(seen)[0] == "building"
    assert DRIFT in await audit(api, instance_id)


async def test_a_guest_running_behind_a_stopped_instance_is_stopped(api: Api, place: Place) -> None:
    instance_id = await running_instance(api, place)
    await api.settled(await place.owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, place.owner, [instance_id], lambda v: v["status"] == "stopped", 30)
    compute = place.fleet.computes[place.world.host_id]
    compute.states[instance_id] = PowerState.RUNNING  # started behind the platform's back

    await until_true(lambda: compute.states[instance_id] == PowerState.STOPPED)
    await until(api, place.owner, [instance_id], lambda v: v["status"] == "stopped", 10)
    seen = await events(api, instance_id)
    (drift,) = [state for name, state in seen if name == "DriftDetected"]
    assert (drift["observed"], drift["expected"], drift["action"]) == (
        "running",
        "stopped",
        "ensure_stopped",
    )
    assert steps_after_drift(seen)[:2] == ["stopping", "Reached"]
    assert DRIFT in await audit(api, instance_id)


async def test_an_unknown_guest_is_removed(api: Api, place: Place) -> None:
    host_id = place.world.host_id
    compute = place.fleet.computes[host_id]
    stranger = "i-00000000000000000000000000"
    await compute.define(
        InstanceSpec(
            instance_id=stranger, vcpus=1, memory_mb=256, disk_path="/nowhere", disk_format="raw"
        )
    )
    await compute.start(stranger)

    await until_true(lambda: stranger not in compute.states)
    await api.wait_for(await api.platform.store.last_position())
    found = [state for name, state in await events(api, host_id) if name == "UnknownGuestFound"]
    assert len(found) == 1 and found[0]["instance_id"] == stranger
    assert found[0]["observed"] == "running"
    assert ("system", "drift", "compute:host:drift", "succeeded") in await audit(api, host_id)


async def test_a_purged_instance_s_guest_is_removed(api: Api, place: Place) -> None:
    instance_id = await running_instance(api, place)
    compute = place.fleet.computes[place.world.host_id]
    for action, status in (("delete", "recycled"), ("purge", "purged")):
        await api.settled(await place.owner.post(f"/v1/instances/{instance_id}/actions/{action}"))
        await until(api, place.owner, [instance_id], lambda v, s=status: v["status"] == s, 30)
    await until_true(lambda: instance_id not in compute.states)
    spec = InstanceSpec(
        instance_id=instance_id, vcpus=1, memory_mb=256, disk_path="/x", disk_format="raw"
    )
    await compute.define(spec)  # it comes back (a hypervisor restored from a backup, say)
    await compute.start(instance_id)

    await until_true(lambda: instance_id not in compute.states)
    seen = await events(api, instance_id)
    (drift,) = [state for name, state in seen if name == "DriftDetected"]
    assert (drift["expected"], drift["action"]) == ("absent", "ensure_absent")
    assert seen[-1][0] == "DriftDetected"  # still purged: no step of its own
    assert DRIFT in await audit(api, instance_id)


async def test_one_report_without_a_guest_does_not_rebuild_it(api: Api, quiet: Place) -> None:
    instance_id = await running_instance(api, quiet)
    host_id = quiet.world.host_id
    healer = DriftHealer(api.platform.executor, api.platform.settings.schema, api.platform.nats)
    await asyncio.sleep(1.1)  # reports must come after its last step (by the margin)
    await api.wait_for(await api.platform.store.last_position())

    def report(*running: str) -> ObservedState:
        return ObservedState(host_id=host_id, instances={i: Wire.RUNNING for i in running})

    # Older than the last step: never counts, however often it comes.
    old = clock.now() - timedelta(seconds=30)
    assert await healer.check(report(), old) == []
    assert await healer.check(report(), old) == []
    assert await healer.check(report(), clock.now()) == []  # missing once
    assert await healer.check(report(instance_id), clock.now()) == []  # back
    assert await healer.check(report(), clock.now()) == []  # missing once again
    assert await healer.check(report(), clock.now()) == [(instance_id, "rebuild")]
    # Its heal is in flight (the instance is building or just back): not healed twice.
    assert await healer.check(report(), clock.now()) == []
    assert await healer.check(report(), clock.now()) == []
    await until(api, quiet.owner, [instance_id], lambda v: v["status"] == "running", 10)
    drifts = [n for n, _ in await events(api, instance_id) if n == "DriftDetected"]
    assert len(drifts) == 1


async def test_an_instance_in_a_transitional_step_is_left_alone(api: Api, quiet: Place) -> None:
    instance_id = await running_instance(api, quiet)
    host_id = quiet.world.host_id
    await quiet.fleet.kill(host_id)  # its commands wait: the stop stays pending
    await api.settled(await quiet.owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, quiet.owner, [instance_id], lambda v: v["status"] == "stopping", 10)
    await asyncio.sleep(1.1)
    healer = DriftHealer(api.platform.executor, api.platform.settings.schema, api.platform.nats)
    for observed in ({instance_id: Wire.RUNNING}, {}, {}, {instance_id: Wire.STOPPED}, {}):
        report = ObservedState(host_id=host_id, instances=observed)
        assert await healer.check(report, clock.now()) == []
    assert "DriftDetected" not in {n for n, _ in await events(api, instance_id)}


async def in_error(api: Api, place: Place, instance_id: str, status: str) -> None:
    """The step the instance is in (its host's daemon dead) times out: it is in error."""
    await until(api, place.owner, [instance_id], lambda v: v["status"] == status, 10)
    later = clock.now() + timedelta(hours=1)
    assert await expire(api.platform.executor, instance_id, later)
    await until(api, place.owner, [instance_id], lambda v: v["status"] == "error", 10)
    await asyncio.sleep(1.1)  # reports must come after its last step (by the margin)
    await api.wait_for(await api.platform.store.last_position())


async def test_a_guest_running_after_its_build_timed_out_is_stopped(api: Api, quiet: Place) -> None:
    """The build's outcome came after its deadline: no claim holds room for the guest and
    nothing bills it, so it is stopped; the instance stays in error until started again."""
    host_id = quiet.world.host_id
    await quiet.fleet.kill(host_id)  # the build waits in the queue: no outcome comes
    instance_id = await create_instance(api, quiet)
    await in_error(api, quiet, instance_id, "building")
    assert instance_id not in (await api.platform.repository.get(host_id, Host)).claims

    healer = DriftHealer(api.platform.executor, api.platform.settings.schema, api.platform.nats)
    running = ObservedState(host_id=host_id, instances={instance_id: Wire.RUNNING})
    assert await healer.check(running, clock.now()) == []  # once is not enough
    assert await healer.check(running, clock.now()) == [(instance_id, "ensure_stopped")]
    assert await healer.check(running, clock.now()) == []  # its stop is in flight
    assert await healer.check(running, clock.now()) == []
    seen = await events(api, instance_id)
    (drift,) = [state for name, state in seen if name == "DriftDetected"]
    assert (drift["observed"], drift["expected"], drift["action"], drift["step"]) == (
        "running",
        "stopped",
        "ensure_stopped",
        False,
    )
    assert seen[-1][0] == "DriftDetected"  # no step: still in error
    assert DRIFT in await audit(api, instance_id)
    stopped = ObservedState(host_id=host_id, instances={instance_id: Wire.STOPPED})
    assert await healer.check(stopped, clock.now()) == []
    assert await healer.check(stopped, clock.now()) == []


async def test_a_guest_whose_room_is_still_held_is_left_running(api: Api, quiet: Place) -> None:
    """A stop that timed out keeps the host's claim: whether it runs is not drift's call."""
    host_id = quiet.world.host_id
    instance_id = await running_instance(api, quiet)
    await quiet.fleet.kill(host_id)
    await api.settled(await quiet.owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await in_error(api, quiet, instance_id, "stopping")
    assert instance_id in (await api.platform.repository.get(host_id, Host)).claims

    healer = DriftHealer(api.platform.executor, api.platform.settings.schema, api.platform.nats)
    running = ObservedState(host_id=host_id, instances={instance_id: Wire.RUNNING})
    for _ in range(3):
        assert await healer.check(running, clock.now()) == []
    assert "DriftDetected" not in {n for n, _ in await events(api, instance_id)}
