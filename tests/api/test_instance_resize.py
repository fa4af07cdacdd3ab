"""Cold resize: a stopped instance takes another flavor; its host claim and quota follow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hostd.fleet import SimulatedFleet
from tests.api.compute_world import World, compute_world, create
from tests.api.conftest import Api
from tests.api.test_host_failure import until


@pytest.fixture
async def world(api: Api, nats_url: str) -> AsyncIterator[tuple[World, SimulatedFleet]]:
    world = await compute_world(api)
    fleet = SimulatedFleet(1, nats_url, host_ids=[world.host_id], heartbeat_every=0.5)
    await fleet.start()
    try:
        await api.platform.host_health.start()
        await until_healthy(api, world.host_id)
        yield world, fleet
    finally:
        await fleet.close()


async def until_healthy(api: Api, host_id: str) -> None:
    async with asyncio.timeout(15):
        while not api.platform.host_health.health(host_id)[0]:
            await asyncio.sleep(0.1)


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

    running = await owner.post(
        f"/v1/instances/{instance_id}/actions/resize", json={"flavor_id": bigger}
    )
    assert running.status == 409 and (await running.json())["code"] == "invalid_state"

    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 30)
    too_big = await owner.post(
        f"/v1/instances/{instance_id}/actions/resize", json={"flavor_id": huge}
    )
    assert too_big.status == 409 and (await too_big.json())["code"] == "capacity_exhausted"

    await api.settled(
        await owner.post(f"/v1/instances/{instance_id}/actions/resize", json={"flavor_id": bigger})
    )
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
