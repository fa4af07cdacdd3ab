"""A host whose daemon dies: marked down, its instances rebuilt elsewhere, every step audited.

Two simulated hosts (real daemons over NATS, simulated hypervisors) serve a region; one
daemon is killed. Within the heartbeat deadline plus a rebuild, its instances run on the
other host; when it comes back it is marked up and its stale guests are removed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from hostd.daemon import DaemonOptions
from hostd.drivers.compute.port import PowerState
from hostd.fleet import SimulatedFleet
from tests.api.compute_world import CAPACITY, World, compute_world, create
from tests.api.conftest import Api, Caller

DOWN_AFTER = 2.0
"""The heartbeat deadline these tests configure (seconds)."""
REBUILD_BUDGET = 8.0
"""What evacuation may take once the host is marked down."""


class TwoHosts(msgspec.Struct):
    world: World
    hosts: list[str]
    fleet: SimulatedFleet


@pytest.fixture
async def two_hosts(api: Api, nats_url: str) -> AsyncIterator[TwoHosts]:
    api.platform.settings = msgspec.structs.replace(
        api.platform.settings, host_down_after_seconds=DOWN_AFTER
    )
    world = await compute_world(api)
    second = await create(
        api,
        "/v1/admin/hosts",
        {"cluster_id": world.cluster_id, "hostname": "spare-node", "capacity": CAPACITY},
    )
    hosts = [world.host_id, second]
    fleet = SimulatedFleet(
        2,
        nats_url,
        host_ids=hosts,
        heartbeat_every=0.3,
        options=DaemonOptions(observe_every=1.0, ack_wait=5.0, drain_seconds=1.0),
    )
    await fleet.start()
    try:
        await api.platform.host_health.start()
        async with asyncio.timeout(15):
            while not all(api.platform.host_health.health(h)[0] for h in hosts):
                await asyncio.sleep(0.1)
        yield TwoHosts(world, hosts, fleet)
    finally:
        await fleet.close()


async def views(api: Api, caller: Caller, ids: list[str]) -> list[dict[str, Any]]:
    await api.wait_for(await api.platform.store.last_position())
    return [await (await caller.get(f"/v1/instances/{i}")).json() for i in ids]


async def until(api: Api, caller: Caller, ids: list[str], ok: Any, seconds: float) -> list[Any]:
    async with asyncio.timeout(seconds):
        while True:
            seen = await views(api, caller, ids)
            if all(ok(view) for view in seen):
                return seen
            await asyncio.sleep(0.1)


async def audit(api: Api, resource: str) -> set[tuple[str, str, str, str]]:
    page = await (await api.admin.get(f"/v1/audit-events?resource={resource}&limit=100")).json()
    return {(e["actor_kind"], e["actor_id"], e["action"], e["outcome"]) for e in page["items"]}


async def test_a_killed_host_s_instances_run_elsewhere_within_the_deadline(
    api: Api, two_hosts: TwoHosts
) -> None:
    world, fleet = two_hosts.world, two_hosts.fleet
    owner = await api.tenant("evacuees")
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "web",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
                "count": 4,
            },
        )
    )
    ids = created["instance_ids"]
    placed = await until(api, owner, ids, lambda v: v["status"] == "running", 30)
    on = {view["id"]: view["host_id"] for view in placed}
    lost, spare = two_hosts.hosts
    evacuees = [i for i, host in on.items() if host == lost]
    assert evacuees, on  # spread: each host holds some

    killed_at = time.monotonic()
    await fleet.kill(lost)
    moved = await until(
        api,
        owner,
        evacuees,
        lambda v: v["status"] == "running" and v["host_id"] == spare,
        DOWN_AFTER + REBUILD_BUDGET + 5,
    )
    took = time.monotonic() - killed_at
    assert took < DOWN_AFTER + REBUILD_BUDGET, took
    assert all(fleet.computes[spare].states[i] == PowerState.RUNNING for i in evacuees)
    print(f"evacuation of {len(evacuees)} instances: {took:.2f} s after the kill")

    host = await (await api.admin.get(f"/v1/admin/hosts/{lost}")).json()
    assert host["down"] is True and host["instances"] == 0
    spare_view = await (await api.admin.get(f"/v1/admin/hosts/{spare}")).json()
    assert spare_view["instances"] == len(ids) and spare_view["used"]["vcpus"] == 2 * len(ids)
    assert ("system", "host-failure", "compute:host:down", "succeeded") in await audit(api, lost)
    for instance_id in evacuees:
        steps = await audit(api, instance_id)
        assert ("system", "host-failure", "compute:instance:evacuate", "succeeded") in steps
        assert ("host", spare, "compute:instance:outcome", "succeeded") in steps
        stream = await api.platform.store.read_stream(instance_id)
        evacuated = [e for e in stream if e.topic.endswith(".Evacuated")]
        assert len(evacuated) == 1 and lost.encode() in evacuated[0].state
    # The tenant sees its own evacuation steps too (done by the platform on its behalf).
    mine = await (await owner.get(f"/v1/audit-events?resource={evacuees[0]}")).json()
    assert "compute:instance:evacuate" in {e["action"] for e in mine["items"]}
    assert moved

    # The lost host still holds its stale guests; when its daemon is back, it is marked up
    # and removes them instead of running them a second time.
    assert all(i in fleet.computes[lost].states for i in evacuees)
    await fleet.revive(lost)
    async with asyncio.timeout(20):
        while any(i in fleet.computes[lost].states for i in evacuees):
            await asyncio.sleep(0.1)
        while True:
            await api.wait_for(await api.platform.store.last_position())
            host = await (await api.admin.get(f"/v1/admin/hosts/{lost}")).json()
            if host["down"] is False:
                break
            await asyncio.sleep(0.1)
    assert ("system", "host-failure", "compute:host:up", "succeeded") in await audit(api, lost)
    final = await views(api, owner, ids)
    assert {v["status"] for v in final} == {"running"}
    assert all(v["host_id"] == spare for v in final if v["id"] in evacuees)


async def test_a_stopped_instance_moves_without_starting(api: Api, two_hosts: TwoHosts) -> None:
    world, fleet = two_hosts.world, two_hosts.fleet
    owner = await api.tenant("sleepers")
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "idle",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
            },
        )
    )
    instance_id = created["instance_ids"][0]
    (view,) = await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 30)
    lost = view["host_id"]
    (spare,) = [h for h in two_hosts.hosts if h != lost]
    await fleet.kill(lost)
    (moved,) = await until(
        api, owner, [instance_id], lambda v: v["host_id"] == spare, DOWN_AFTER + 10
    )
    assert moved["status"] == "stopped"
    assert instance_id not in fleet.computes[spare].states  # built at its next start
    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/start"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    assert fleet.computes[spare].states[instance_id] == PowerState.RUNNING


async def test_maintenance_drains_a_host(api: Api, two_hosts: TwoHosts) -> None:
    world, fleet = two_hosts.world, two_hosts.fleet
    owner = await api.tenant("drained")
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "svc",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
                "count": 2,
            },
        )
    )
    ids = created["instance_ids"]
    placed = await until(api, owner, ids, lambda v: v["status"] == "running", 30)
    drained = placed[0]["host_id"]
    (other,) = [h for h in two_hosts.hosts if h != drained]
    await api.settled(await api.admin.post(f"/v1/admin/hosts/{drained}/actions/maintenance"))
    await until(api, owner, ids, lambda v: v["status"] == "running" and v["host_id"] == other, 20)
    async with asyncio.timeout(10):
        while fleet.computes[drained].states:  # the drained host's guests are removed
            await asyncio.sleep(0.1)
    host = await (await api.admin.get(f"/v1/admin/hosts/{drained}")).json()
    assert host["status"] == "maintenance" and host["instances"] == 0 and host["down"] is False
    steps = await audit(api, ids[0])
    assert ("system", "host-failure", "compute:instance:evacuate", "succeeded") in steps
