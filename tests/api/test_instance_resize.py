"""Resize: a stopped instance takes another flavor at its next start; a running one grows
live (hot-plug) within its guest's room, or is stopped and started at its new size. Its
host claim and quota follow at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hostd.fleet import SimulatedFleet
from tests.api.compute_world import World, compute_world, create, one_host_fleet
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import until, views


@pytest.fixture
async def world(api: Api, nats_url: str) -> AsyncIterator[tuple[World, SimulatedFleet]]:
    world = await compute_world(api)
    async with one_host_fleet(api, nats_url, world.host_id) as fleet:
        yield world, fleet


async def resize(owner: Caller, instance_id: str, flavor_id: str) -> Any:
    """POST the resize action; the raw response."""
    return await owner.post(
        f"/v1/instances/{instance_id}/actions/resize", json={"flavor_id": flavor_id}
    )


def flavor(name: str, vcpus: int, memory_mb: int) -> dict[str, object]:
    return {
        "name": name,
        "vcpus": vcpus,
        "memory_mb": memory_mb,
        "disk": {"min_gb": 1, "max_gb": 20},
    }


async def test_a_stopped_instance_is_resized_and_runs_at_its_new_size(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("resizer")
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "grow",
                "region_id": place.region_id,
                "flavor_id": place.flavor_id,
                "image_id": place.image_id,
            },
        )
    )
    instance_id = created["instance_ids"][0]
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    bigger = await create(api, "/v1/admin/flavors", flavor("big", 6, 4096))
    huge = await create(api, "/v1/admin/flavors", flavor("huge", 16, 4096))

    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 30)
    too_big = await resize(owner, instance_id, huge)
    assert too_big.status == 409 and (await too_big.json())["code"] == "capacity_exhausted"

    await api.settled(await resize(owner, instance_id, bigger))
    (view,) = await until(api, owner, [instance_id], lambda v: v["vcpus"] == 6, 10)
    assert view["flavor_id"] == bigger and view["memory_mb"] == 4096
    host = await (await api.admin.get(f"/v1/admin/hosts/{place.host_id}")).json()
    assert host["used"]["vcpus"] == 6 and host["used"]["memory_mb"] == 4096
    quotas = await (await owner.get(f"/v1/quotas?region={place.region_id}")).json()
    used = {q["kind"]: q["used"] for q in quotas["quotas"]}
    assert used["vcpus"] == 6 and used["memory_mb"] == 4096 and used["instances"] == 1

    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/start"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    assert fleet.computes[place.host_id].specs[instance_id].vcpus == 6
    stream = await api.platform.store.read_stream(instance_id)
    assert [e for e in stream if e.topic.endswith(".Resized")]


async def running(api: Api, place: World, owner: Caller, name: str) -> str:
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": name,
                "region_id": place.region_id,
                "flavor_id": place.flavor_id,
                "image_id": place.image_id,
            },
        )
    )
    instance_id: str = created["instance_ids"][0]
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    return instance_id


async def topics(api: Api, instance_id: str, after: int) -> list[str]:
    stream = await api.platform.store.read_stream(instance_id)
    return [e.topic.rsplit(".", 1)[-1] for e in stream if e.originator_version > after]


async def version(api: Api, instance_id: str) -> int:
    return (await api.platform.store.read_stream(instance_id))[-1].originator_version


async def test_a_running_instance_grows_live_without_a_restart(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("hotplug")
    instance_id = await running(api, place, owner, "grow-live")
    (view,) = await views(api, owner, [instance_id])
    assert (view["max_vcpus"], view["max_memory_mb"]) == (8, 4096)  # 4x its 2 vCPUs, 1 GiB
    before = await version(api, instance_id)
    bigger = await create(api, "/v1/admin/flavors", flavor("bigger", 6, 4096))

    await api.settled(await resize(owner, instance_id, bigger))
    (view,) = await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    assert (view["vcpus"], view["memory_mb"], view["flavor_id"]) == (6, 4096, bigger)
    compute = fleet.computes[place.host_id]
    assert compute.sizes[instance_id] == (6, 4096), "plugged into the running guest"
    assert await topics(api, instance_id, before) == ["ResizeStarted", "Reached"]
    host = await (await api.admin.get(f"/v1/admin/hosts/{place.host_id}")).json()
    assert host["used"]["vcpus"] == 6 and host["used"]["memory_mb"] == 4096
    quotas = await (await owner.get(f"/v1/quotas?region={place.region_id}")).json()
    used = {q["kind"]: q["used"] for q in quotas["quotas"]}
    assert used["vcpus"] == 6 and used["memory_mb"] == 4096


async def test_a_running_instance_that_cannot_grow_live_restarts_at_its_new_size(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("shrinker")
    instance_id = await running(api, place, owner, "shrink")
    before = await version(api, instance_id)
    smaller = await create(api, "/v1/admin/flavors", flavor("smaller", 1, 1024))

    await api.settled(await resize(owner, instance_id, smaller))
    (view,) = await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    assert (view["vcpus"], view["memory_mb"]) == (1, 1024)
    assert fleet.computes[place.host_id].sizes[instance_id] == (1, 1024)
    assert await topics(api, instance_id, before) == [
        "ResizeStarted",  # stopping
        "StepStarted",  # starting, at the new size
        "Reached",
    ]


async def test_a_guest_that_refuses_hot_plug_is_restarted_at_its_new_size(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("stubborn")
    instance_id = await running(api, place, owner, "refuses")
    before = await version(api, instance_id)
    fleet.computes[place.host_id].refuses_hot_plug = True
    bigger = await create(api, "/v1/admin/flavors", flavor("bigger-still", 4, 2048))

    await api.settled(await resize(owner, instance_id, bigger))
    (view,) = await until(
        api, owner, [instance_id], lambda v: v["status"] == "running" and v["vcpus"] == 4, 30
    )
    assert view["error"] is None
    assert fleet.computes[place.host_id].sizes[instance_id] == (4, 2048)
    assert await topics(api, instance_id, before) == [
        "ResizeStarted",  # resizing: the host refuses
        "HotResizeRefused",  # stopping
        "StepStarted",  # starting
        "Reached",
    ]
    stream = await api.platform.store.read_stream(instance_id)
    refused = [e for e in stream if e.topic.endswith(".HotResizeRefused")]
    assert b"did not take the hot-plugged devices" in refused[0].state


async def test_a_running_instance_s_host_without_room_refuses_the_growth(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("greedy")
    instance_id = await running(api, place, owner, "greedy")
    before = await version(api, instance_id)
    huge = await create(api, "/v1/admin/flavors", flavor("too-huge", 16, 4096))
    refused = await resize(owner, instance_id, huge)
    assert refused.status == 409 and (await refused.json())["code"] == "capacity_exhausted"
    (view,) = await views(api, owner, [instance_id])
    assert (view["status"], view["vcpus"]) == ("running", 2)
    assert await version(api, instance_id) == before
    assert fleet.computes[place.host_id].sizes[instance_id] == (2, 1024)
