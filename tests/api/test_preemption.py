"""Preemption through the API: a regular create that fits nowhere stops preemptible instances.

One simulated host, full of tenant B's preemptible instance: tenant A's regular create
takes its room in one append (B's instance stopped, its claim released, B told through its
own events and audit log, A told nothing of B), and nothing else ever preempts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from domain.compute.preemption import Preemption
from domain.inventory.host import Host
from hostd.drivers.compute.port import PowerState
from hostd.fleet import SimulatedFleet
from tests.api.compute_world import World, compute_world, create, until_healthy
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import until
from tests.api.test_instance_resize import flavor

_PREEMPTED = "domain.compute.instance:Instance.Preempted"


class Place(msgspec.Struct):
    world: World
    fleet: SimulatedFleet
    whole: str
    """A flavor as large as the host (8 vCPUs)."""
    most: str
    """Six vCPUs of it."""


@pytest.fixture
async def place(api: Api, nats_url: str) -> AsyncIterator[Place]:
    world = await compute_world(api)
    fleet = SimulatedFleet(1, nats_url, host_ids=[world.host_id], heartbeat_every=0.5)
    await fleet.start()
    try:
        await api.platform.host_health.start()
        await until_healthy(api, world.host_id)
        whole = await create(api, "/v1/admin/flavors", flavor("whole", 8, 4096))
        most = await create(api, "/v1/admin/flavors", flavor("most", 6, 4096))
        yield Place(world, fleet, whole, most)
    finally:
        await fleet.close()


def body(place: Place, flavor_id: str, **extra: Any) -> dict[str, Any]:
    world = place.world
    return {
        "name": "vm",
        "region_id": world.region_id,
        "flavor_id": flavor_id,
        "image_id": world.image_id,
        **extra,
    }


async def running(api: Api, owner: Caller, place: Place, flavor_id: str, **extra: Any) -> str:
    created = await api.settled(
        await owner.post("/v1/instances", json=body(place, flavor_id, **extra))
    )
    instance_id = str(created["instance_ids"][0])
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    return instance_id


async def claims(api: Api, host_id: str) -> set[str]:
    return set((await api.platform.repository.get(host_id, Host)).claims)


async def test_a_regular_create_preempts_a_preemptible_instance_of_another_tenant(
    api: Api, place: Place
) -> None:
    spot, regular = await api.tenant("spot"), await api.tenant("regular")
    victim = await running(api, spot, place, place.whole, preemptible=True)

    created = await api.settled(await regular.post("/v1/instances", json=body(place, place.whole)))
    (taker,) = created["instance_ids"]
    seen = await until(
        api,
        regular,
        [taker],
        lambda v: v["status"] == "running",
        30,
    )
    assert seen[0]["host_id"] == place.world.host_id
    (stopped,) = await until(api, spot, [victim], lambda v: v["status"] == "stopped", 30)
    assert stopped["host_id"] == place.world.host_id
    assert await claims(api, place.world.host_id) == {taker}
    guests = place.fleet.computes[place.world.host_id].states
    assert (guests[taker], guests[victim]) == (PowerState.RUNNING, PowerState.STOPPED)

    # The victim's owner is told through its own events and audit log, by the scheduler.
    store = api.platform.store
    spot_events = await store.read_all(limit=10_000, tenant_id=spot.tenant_id)
    (notice,) = [e for e in spot_events if e.topic == _PREEMPTED]
    assert notice.originator_id == victim
    assert notice.envelope().actor.id == "scheduler"
    preemption_id = msgspec.json.decode(notice.state)["preemption_id"]
    assert any(e.originator_id == victim and e.topic.endswith("StepStarted") for e in spot_events)
    page = await (await spot.get(f"/v1/audit-events?resource={victim}&limit=50")).json()
    assert ("system", "scheduler", "compute:instance:preempt", "succeeded") in {
        (e["actor_kind"], e["actor_id"], e["action"], e["outcome"]) for e in page["items"]
    }

    # The preempting tenant learns nothing of whose instance made room.
    regular_events = await store.read_all(limit=10_000, tenant_id=regular.tenant_id)
    assert not [
        e for e in regular_events if victim.encode() in e.state or e.originator_id == victim
    ]
    scheduled = next(
        msgspec.json.decode(e.state)
        for e in regular_events
        if e.originator_id == taker and e.topic.endswith(".Scheduled")
    )
    assert scheduled["decision"]["preemption"]["victim_count"] == 1
    assert scheduled["decision"]["preemption"]["preemption_id"] == preemption_id

    # The operator's record names both sides.
    record = await api.platform.repository.get(preemption_id, Preemption)
    assert (record.instance_id, record.host_id) == (taker, place.world.host_id)
    assert record.victims == [{"instance_id": victim, "tenant_id": spot.tenant_id}]

    # Started again, the victim needs its room back: refused while the host is full.
    refused = await spot.post(f"/v1/instances/{victim}/actions/start")
    assert refused.status == 409 and (await refused.json())["code"] == "capacity_exhausted"
    quotas = await (await spot.get(f"/v1/quotas?region={place.world.region_id}")).json()
    assert {q["kind"]: q["used"] for q in quotas["quotas"]}["vcpus"] == 8


async def test_nothing_is_preempted_when_even_that_would_not_make_room(
    api: Api, place: Place
) -> None:
    spot, regular = await api.tenant("spot"), await api.tenant("regular")
    kept = await running(api, spot, place, place.most)
    small = await create(api, "/v1/admin/flavors", flavor("small", 2, 1024))
    victim = await running(api, spot, place, small, preemptible=True)
    before = await claims(api, place.world.host_id)

    refused = await regular.post("/v1/instances", json=body(place, place.whole))
    assert refused.status == 409 and (await refused.json())["code"] == "no_capacity"
    await until(api, spot, [kept, victim], lambda v: v["status"] == "running", 5)
    assert await claims(api, place.world.host_id) == before == {kept, victim}
    events = await api.platform.store.read_all(limit=10_000, tenant_id=spot.tenant_id)
    assert not [e for e in events if e.topic == _PREEMPTED]


async def test_a_preemptible_create_never_preempts(api: Api, place: Place) -> None:
    spot, other = await api.tenant("spot"), await api.tenant("other-spot")
    victim = await running(api, spot, place, place.whole, preemptible=True)

    refused = await other.post("/v1/instances", json=body(place, place.whole, preemptible=True))
    assert refused.status == 409 and (await refused.json())["code"] == "no_capacity"
    await until(api, spot, [victim], lambda v: v["status"] == "running", 5)
    assert await claims(api, place.world.host_id) == {victim}


async def test_the_preempting_tenant_s_quota_still_holds(api: Api, place: Place) -> None:
    spot, regular = await api.tenant("spot"), await api.tenant("regular")
    victim = await running(api, spot, place, place.whole, preemptible=True)
    await api.settled(
        await api.admin.put(
            f"/v1/admin/tenants/{regular.tenant_id}/quotas",
            json={"region": place.world.region_id, "limits": {"vcpus": 4}},
        )
    )

    refused = await regular.post("/v1/instances", json=body(place, place.whole))
    assert refused.status == 403 and (await refused.json())["code"] == "quota_exceeded"
    await until(api, spot, [victim], lambda v: v["status"] == "running", 5)
    assert await claims(api, place.world.host_id) == {victim}


async def test_two_creates_racing_for_one_victim_preempt_it_once(api: Api, place: Place) -> None:
    spot = await api.tenant("spot")
    first, second = await api.tenant("first"), await api.tenant("second")
    victim = await running(api, spot, place, place.whole, preemptible=True)

    answers = await asyncio.gather(
        *(t.post("/v1/instances", json=body(place, place.whole)) for t in (first, second))
    )
    statuses = sorted(a.status for a in answers)
    assert statuses == [202, 409], statuses
    won = next(a for a in answers if a.status == 202)
    lost = next(a for a in answers if a.status == 409)
    assert (await lost.json())["code"] == "no_capacity"
    (taker,) = (await api.settled(won))["instance_ids"]
    await until(api, spot, [victim], lambda v: v["status"] == "stopped", 30)
    assert await claims(api, place.world.host_id) == {taker}
    events = await api.platform.store.read_all(limit=10_000, tenant_id=spot.tenant_id)
    assert len([e for e in events if e.topic == _PREEMPTED]) == 1
