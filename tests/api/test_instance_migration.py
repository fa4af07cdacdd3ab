"""Operator migrations: live and cold, to the scheduler's pick or a named host, through the API,
NATS and two simulated host daemons; a failure or a missed deadline leaves the instance home.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec
import pytest

from domain.compute import instance as lifecycle
from domain.ids import new_id
from hostd.drivers.compute.port import MigrationTarget, PowerState
from hostd.fleet import SimulatedFleet
from hostd.storage.simulated import SimulatedStorage
from tests.api.compute_world import CAPACITY, create
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import DOWN_AFTER, TwoHosts, audit, two_hosts, until

__all__ = ["two_hosts"]  # the fixture, shared with the host failure tests


async def running_instance(api: Api, place: TwoHosts, owner: Caller) -> dict[str, Any]:
    world = place.world
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "mover",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
            },
        )
    )
    (view,) = await until(
        api, owner, created["instance_ids"], lambda v: v["status"] == "running", 30
    )
    return view


def other(place: TwoHosts, host_id: str) -> str:
    (spare,) = [h for h in place.hosts if h != host_id]
    return spare


async def used(api: Api, host_id: str) -> dict[str, Any]:
    view = await (await api.admin.get(f"/v1/admin/hosts/{host_id}")).json()
    return {"instances": view["instances"], **view["used"]}


def storage(place: TwoHosts, host_id: str) -> SimulatedStorage:
    disks = place.fleet.daemons[host_id].host.storage
    assert isinstance(disks, SimulatedStorage)
    return disks


async def events(api: Api, instance_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The instance's events, without the console reports that follow a start."""
    stream = await api.platform.store.read_stream(instance_id)
    named = [(e.topic.rpartition(".")[2], msgspec.json.decode(e.state)) for e in stream]
    return [(name, state) for name, state in named if name != "ConsoleReported"]


async def migrate(api: Api, instance_id: str, **body: Any) -> Any:
    return await api.admin.post(f"/v1/admin/instances/{instance_id}/actions/migrate", json=body)


async def test_a_live_migration_moves_the_running_guest_and_its_claim(
    api: Api, two_hosts: TwoHosts
) -> None:
    owner = await api.tenant("live-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    computes = two_hosts.fleet.computes

    asked = time.monotonic()
    accepted = await api.settled(await migrate(api, instance_id, live=True))
    assert (accepted["from_host_id"], accepted["to_host_id"]) == (source, target)
    (moved,) = await until(
        api,
        owner,
        [instance_id],
        lambda v: v["host_id"] == target and v["status"] == "running",
        15,
    )
    print(f"live migration (simulated): {time.monotonic() - asked:.2f} s from the request")
    assert moved["migration"] is None and moved["error"] is None
    assert computes[target].states[instance_id] == PowerState.RUNNING
    assert instance_id not in computes[source].states
    assert await used(api, source) == {"instances": 0, "vcpus": 0, "memory_mb": 0, "disk_gb": 0}
    assert (await used(api, target))["vcpus"] == view["vcpus"]

    seen = await events(api, instance_id)
    names = [name for name, _ in seen]
    assert names[-3:] == ["MigrationStarted", "MigrationPrepared", "Migrated"]
    started, migrated = seen[-3][1], seen[-1][1]
    assert (started["from_host_id"], started["to_host_id"], started["live"]) == (
        source,
        target,
        True,
    )
    assert (migrated["from_host_id"], migrated["to_host_id"], migrated["live"]) == (
        source,
        target,
        True,
    )
    assert "StepStarted" not in names[-3:]  # live: it never stopped
    # The target prepared the disk; the source's copy is gone.
    assert storage(two_hosts, target).disks[instance_id].size_gb == view["disk_gb"]
    assert instance_id not in storage(two_hosts, source).disks
    # The target confirms what it now runs, and with that where its console listens.
    async with asyncio.timeout(10):
        while (answer := await owner.get(f"/v1/instances/{instance_id}/console")).status != 200:
            await asyncio.sleep(0.05)
    assert (await answer.json())["host_id"] == target
    steps = await audit(api, instance_id)
    admin_id = api.admin.user_id
    assert ("admin", admin_id, "admin:instance:migrate", "succeeded") in steps
    assert ("host", source, "compute:instance:outcome", "succeeded") in steps
    # The tenant sees the operator's migration of its instance in its own audit log.
    mine = await (await owner.get(f"/v1/audit-events?resource={instance_id}")).json()
    assert "admin:instance:migrate" in {e["action"] for e in mine["items"]}


async def test_a_cold_migration_to_a_named_host_stops_moves_and_starts(
    api: Api, two_hosts: TwoHosts
) -> None:
    owner = await api.tenant("cold-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)

    await api.settled(await migrate(api, instance_id, live=False, host_id=target))
    await until(
        api,
        owner,
        [instance_id],
        lambda v: v["host_id"] == target and v["status"] == "running",
        15,
    )
    assert two_hosts.fleet.computes[target].states[instance_id] == PowerState.RUNNING
    assert instance_id not in two_hosts.fleet.computes[source].states
    names = [name for name, _ in await events(api, instance_id)]
    assert names[-5:] == [
        "MigrationStarted",
        "MigrationPrepared",
        "Migrated",
        "StepStarted",
        "Reached",
    ]
    assert (await used(api, source))["instances"] == 0


async def test_a_stopped_instance_migrates_cold_and_stays_stopped(
    api: Api, two_hosts: TwoHosts
) -> None:
    owner = await api.tenant("sleeping-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 15)

    live = await migrate(api, instance_id, live=True)
    assert live.status == 409 and (await live.json())["code"] == "invalid_state"
    await api.settled(await migrate(api, instance_id, live=False))
    await until(
        api,
        owner,
        [instance_id],
        lambda v: v["host_id"] == target and v["status"] == "stopped",
        15,
    )
    assert two_hosts.fleet.computes[target].states[instance_id] == PowerState.STOPPED
    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/start"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 15)
    assert two_hosts.fleet.computes[target].states[instance_id] == PowerState.RUNNING


async def test_a_failed_migration_releases_the_target_and_leaves_the_guest_home(
    api: Api, two_hosts: TwoHosts
) -> None:
    owner = await api.tenant("stay-homers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    computes = two_hosts.fleet.computes
    computes[source].peers = {}  # the source's hypervisor cannot reach any other

    await api.settled(await migrate(api, instance_id, live=True))
    (failed,) = await until(api, owner, [instance_id], lambda v: v["status"] != "migrating", 15)
    assert failed["status"] == "running" and failed["host_id"] == source
    assert "cannot reach" in failed["error"]
    assert computes[source].states[instance_id] == PowerState.RUNNING
    assert await used(api, target) == {"instances": 0, "vcpus": 0, "memory_mb": 0, "disk_gb": 0}
    assert (await used(api, source))["instances"] == 1
    name, state = (await events(api, instance_id))[-1]
    assert name == "MigrationFailed" and state["to_host_id"] == target
    async with asyncio.timeout(10):  # the target removes the disk it prepared
        while instance_id in storage(two_hosts, target).disks:
            await asyncio.sleep(0.05)

    # Cold: the guest was stopped for the move; the failed move starts it again at home.
    before = len(await events(api, instance_id))
    await api.settled(await migrate(api, instance_id, live=False))
    async with asyncio.timeout(15):
        while len(names := [n for n, _ in await events(api, instance_id)]) < before + 5:
            await asyncio.sleep(0.1)
    assert names[before:] == [
        "MigrationStarted",
        "MigrationPrepared",
        "MigrationFailed",
        "StepStarted",
        "Reached",
    ]
    assert computes[source].states[instance_id] == PowerState.RUNNING
    assert (await used(api, target))["instances"] == 0


async def test_a_target_that_cannot_prepare_fails_the_migration_before_the_source_moves(
    api: Api, two_hosts: TwoHosts
) -> None:
    owner = await api.tenant("unprepared-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    storage(two_hosts, target).images = set()  # the target's image pool lacks the image

    await api.settled(await migrate(api, instance_id, live=False))
    (failed,) = await until(api, owner, [instance_id], lambda v: v["status"] != "migrating", 15)
    assert failed["status"] == "running" and failed["host_id"] == source
    assert "could not prepare" in failed["error"] and "not on this host" in failed["error"]
    assert two_hosts.fleet.computes[source].states[instance_id] == PowerState.RUNNING
    assert (await used(api, target))["instances"] == 0
    names = [name for name, _ in await events(api, instance_id)]
    assert names[-2:] == ["MigrationStarted", "MigrationFailed"]  # the source never moved


async def test_a_missed_deadline_fails_the_migration_and_releases_the_target(
    api: Api, two_hosts: TwoHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.tenant("deadline-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    monkeypatch.setitem(lifecycle.DEADLINES, lifecycle.MIGRATING, lifecycle.timedelta(seconds=1))
    keep_hosts_up(api)  # not declared down (and evacuated) before the deadline passes
    await two_hosts.fleet.kill(source)  # the step waits in its queue; nobody answers

    await api.settled(await migrate(api, instance_id, live=True))
    (timed_out,) = await until(api, owner, [instance_id], lambda v: v["status"] != "migrating", 10)
    assert timed_out["status"] == "error" and timed_out["host_id"] == source
    assert "migrating did not finish" in timed_out["error"]
    assert (await used(api, target))["instances"] == 0
    name, state = (await events(api, instance_id))[-1]
    assert name == "MigrationFailed" and state["status"] == "error"
    steps = await audit(api, instance_id)
    assert ("system", "deadlines", "compute:instance:timeout", "succeeded") in steps


def keep_hosts_up(api: Api) -> None:
    api.platform.settings = msgspec.structs.replace(
        api.platform.settings, host_down_after_seconds=600
    )


async def test_a_migration_that_ended_unseen_settles_where_its_guest_is_found(
    api: Api, two_hosts: TwoHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source's daemon dies with the move in hand; the deadline passes (error, target
    released). The guest did reach the target: the target's reports settle it there, the
    target is claimed again, the source let go and told to remove what it kept. The dead
    daemon's queued move, delivered when it returns, has expired and is not applied."""
    owner = await api.tenant("lost-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    monkeypatch.setitem(lifecycle.DEADLINES, lifecycle.MIGRATING, lifecycle.timedelta(seconds=2))
    keep_hosts_up(api)  # a dead daemon's host is not declared down (and evacuated) meanwhile
    fleet = two_hosts.fleet
    await fleet.kill(source)  # the move waits in the source's queue
    await api.settled(await migrate(api, instance_id, live=True))
    (lost,) = await until(api, owner, [instance_id], lambda v: v["status"] == "error", 15)
    assert lost["host_id"] == source and (await used(api, target))["instances"] == 0
    # ... but the hypervisors had moved it before the daemon died.
    await fleet.computes[source].migrate(
        instance_id, MigrationTarget(target, "spare-node"), live=True
    )

    (settled,) = await until(api, owner, [instance_id], lambda v: v["status"] == "running", 20)
    assert settled["host_id"] == target and settled["error"] is None
    assert (await used(api, target))["instances"] == 1
    assert (await used(api, source))["instances"] == 0
    name, state = (await events(api, instance_id))[-1]
    assert name == "MigrationSettled" and (state["host_id"], state["status"]) == (target, "running")
    assert ("system", "drift", "compute:instance:drift", "succeeded") in await audit(
        api, instance_id
    )

    await fleet.revive(source)
    async with asyncio.timeout(15):  # the source removes the disk the guest left behind
        while instance_id in storage(two_hosts, source).disks:
            await asyncio.sleep(0.05)
    assert fleet.computes[target].states[instance_id] == PowerState.RUNNING
    assert instance_id not in fleet.computes[source].states


async def test_a_migration_whose_target_never_prepared_settles_at_home(
    api: Api, two_hosts: TwoHosts, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.tenant("home-settlers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    monkeypatch.setitem(lifecycle.DEADLINES, lifecycle.MIGRATING, lifecycle.timedelta(seconds=2))
    keep_hosts_up(api)  # a dead daemon's host is not declared down (and evacuated) meanwhile
    await two_hosts.fleet.kill(target)  # the prepare step is never answered
    await api.settled(await migrate(api, instance_id, live=True))
    await until(api, owner, [instance_id], lambda v: v["status"] == "error", 15)
    (settled,) = await until(api, owner, [instance_id], lambda v: v["status"] == "running", 20)
    assert settled["host_id"] == source and settled["error"] is None
    assert (await used(api, source))["instances"] == 1
    assert (await used(api, target))["instances"] == 0
    names = [n for n, _ in await events(api, instance_id)]
    assert names[-2:] == ["MigrationFailed", "MigrationSettled"]


async def test_refused_migrations_answer_problems(api: Api, two_hosts: TwoHosts) -> None:
    owner = await api.tenant("refused-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)

    same = await migrate(api, instance_id, live=True, host_id=source)
    assert same.status == 409 and (await same.json())["code"] == "invalid_state"
    unknown = await migrate(api, instance_id, live=True, host_id=new_id("hst"))
    assert unknown.status == 422 and (await unknown.json())["code"] == "validation_failed"

    await api.settled(await api.admin.post(f"/v1/admin/hosts/{target}/actions/disable"))
    disabled = await migrate(api, instance_id, live=True, host_id=target)
    problem = await disabled.json()
    assert disabled.status == 409 and problem["code"] == "no_capacity", problem
    assert disabled.content_type == "application/problem+json"
    await api.settled(await api.admin.post(f"/v1/admin/hosts/{target}/actions/enable"))

    stale = await api.admin.post(
        f"/v1/admin/instances/{instance_id}/actions/migrate",
        json={"live": True},
        headers={"If-Match": '"1"'},
    )
    assert stale.status == 412 and (await stale.json())["code"] == "precondition_failed"
    tenant = await owner.post(
        f"/v1/admin/instances/{instance_id}/actions/migrate", json={"live": True}
    )
    assert tenant.status == 403
    # Nothing was held by the refusals.
    assert (await used(api, target))["instances"] == 0


async def test_an_instance_whose_source_is_lost_mid_migration_is_evacuated(
    api: Api, two_hosts: TwoHosts
) -> None:
    owner = await api.tenant("lost-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    await two_hosts.fleet.kill(source)  # the migration waits in its queue, then it is lost
    await api.settled(await migrate(api, instance_id, live=True))
    (moved,) = await until(
        api,
        owner,
        [instance_id],
        lambda v: v["host_id"] == target and v["status"] == "running",
        15,
    )
    assert moved["migration"] is None
    assert two_hosts.fleet.computes[target].states[instance_id] == PowerState.RUNNING
    assert (await used(api, target))["instances"] == 1  # the migration's claim, not a second
    assert (await used(api, source))["instances"] == 0
    names = [name for name, _ in await events(api, instance_id)]
    assert "Evacuated" in names and "Migrated" not in names


async def test_an_evacuation_elsewhere_releases_the_migration_s_target(
    api: Api, two_hosts: TwoHosts, nats_url: str
) -> None:
    owner = await api.tenant("far-movers")
    view = await running_instance(api, two_hosts, owner)
    instance_id, source = view["id"], view["host_id"]
    target = other(two_hosts, source)
    third = await create(
        api,
        "/v1/admin/hosts",
        {"cluster_id": two_hosts.world.cluster_id, "hostname": "third-node", "capacity": CAPACITY},
    )
    async with SimulatedFleet(1, nats_url, host_ids=[third], heartbeat_every=0.3) as spare:
        async with asyncio.timeout(15):
            while not api.platform.host_health.health(third)[0]:
                await asyncio.sleep(0.1)
        # The source is lost only once the migration is under way (not before it starts,
        # which would evacuate the instance to any host, the target included).
        keep_hosts_up(api)
        await two_hosts.fleet.kill(source)
        await api.settled(await migrate(api, instance_id, live=True, host_id=target))
        await api.settled(await api.admin.post(f"/v1/admin/hosts/{target}/actions/disable"))
        api.platform.settings = msgspec.structs.replace(
            api.platform.settings, host_down_after_seconds=DOWN_AFTER
        )
        await until(
            api,
            owner,
            [instance_id],
            lambda v: v["host_id"] == third and v["status"] == "running",
            15,
        )
        assert spare.computes[third].states[instance_id] == PowerState.RUNNING
        assert (await used(api, target))["instances"] == 0
        assert (await used(api, source))["instances"] == 0
        assert (await used(api, third))["instances"] == 1


async def test_racing_migrations_leave_each_instance_claimed_once_where_it_runs(
    api: Api, two_hosts: TwoHosts, nats_url: str
) -> None:
    """Many migrations at once, live and cold, some refused, some failing on the host: when
    all have ended, every instance holds exactly one claim, on the host it is on."""
    world = two_hosts.world
    third = await create(
        api,
        "/v1/admin/hosts",
        {"cluster_id": world.cluster_id, "hostname": "race-node", "capacity": CAPACITY},
    )
    hosts = [*two_hosts.hosts, third]
    fleet = two_hosts.fleet
    async with SimulatedFleet(1, nats_url, host_ids=[third], heartbeat_every=0.3) as extra:
        # One set of peers across both fleets, so guests can move to and from the third host.
        peers = fleet.computes
        peers[third] = extra.computes[third]
        extra.computes[third].peers = peers
        async with asyncio.timeout(15):
            while not api.platform.host_health.health(third)[0]:
                await asyncio.sleep(0.1)
        owner = await api.tenant("racers")
        created = await api.settled(
            await owner.post(
                "/v1/instances",
                json={
                    "name": "racer",
                    "region_id": world.region_id,
                    "flavor_id": world.flavor_id,
                    "image_id": world.image_id,
                    "count": 6,
                },
            )
        )
        ids = created["instance_ids"]
        await until(api, owner, ids, lambda v: v["status"] == "running", 30)
        peers[hosts[0]].peers = {}  # moves off the first host fail on the hypervisor
        try:
            for round_ in range(3):
                answers = await asyncio.gather(
                    *(
                        migrate(api, instance_id, live=(n + round_) % 2 == 0)
                        for n, instance_id in enumerate(ids)
                    )
                )
                assert {a.status for a in answers} <= {202, 409}, [a.status for a in answers]
                await until(api, owner, ids, lambda v: v["status"] in ("running", "stopped"), 30)
        finally:
            peers[hosts[0]].peers = peers
        final = await until(api, owner, ids, lambda v: v["status"] == "running", 30)
        ended = [name for i in ids for name, _ in await events(api, i)]
        print(
            f"racing migrations: {ended.count('MigrationStarted')} started, "
            f"{ended.count('Migrated')} moved, {ended.count('MigrationFailed')} failed"
        )
        assert ended.count("Migrated") and ended.count("MigrationFailed")
        on = {view["id"]: view["host_id"] for view in final}
        for host_id in hosts:
            view = await (await api.admin.get(f"/v1/admin/hosts/{host_id}")).json()
            mine = [i for i, h in on.items() if h == host_id]
            assert view["instances"] == len(mine), (host_id, view, on)
            assert view["used"]["vcpus"] == sum(v["vcpus"] for v in final if v["id"] in mine)
            assert view["used"]["vcpus"] <= CAPACITY["vcpus"]
        for instance_id, host_id in on.items():
            assert instance_id in {**fleet.computes, **extra.computes}[host_id].states
