"""GPU flavors: instances get passthrough devices of their host, one instance each, counted
against the tenant's GPU quota, handed to the hypervisor as ``<hostdev>`` (the simulated
host keeps the spec it was given; tests/unit/test_domain_xml.py has the XML)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hostd.fleet import SimulatedFleet
from tests.api.compute_world import World, compute_world, create, one_host_fleet
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import until

GPUS = [
    {"address": "0000:3b:00.0", "model": "NVIDIA A100"},
    {"address": "0000:5e:00.0", "model": "NVIDIA A100"},
    {"address": "0000:86:00.0", "model": "NVIDIA L4"},
]


@pytest.fixture
async def world(api: Api, nats_url: str) -> AsyncIterator[tuple[World, SimulatedFleet]]:
    world = await compute_world(api, vcpus=1)
    await api.settled(
        await api.admin.patch(f"/v1/admin/hosts/{world.host_id}", json={"gpus": GPUS})
    )
    await api.settled(
        await api.admin.patch(
            f"/v1/admin/regions/{world.region_id}", json={"quota_defaults": {"gpus": 3}}
        )
    )
    async with one_host_fleet(api, nats_url, world.host_id) as fleet:
        yield world, fleet


async def gpu_flavor(api: Api, name: str, count: int, model: str | None) -> str:
    body: dict[str, Any] = {
        "name": name,
        "vcpus": 1,
        "memory_mb": 1024,
        "disk": {"min_gb": 1, "max_gb": 20},
        "gpus": {"count": count, "model": model},
    }
    return await create(api, "/v1/admin/flavors", body)


async def order(owner: Caller, place: World, flavor_id: str) -> Any:
    return await owner.post(
        "/v1/instances",
        json={
            "name": "gpu",
            "region_id": place.region_id,
            "flavor_id": flavor_id,
            "image_id": place.image_id,
        },
    )


async def test_gpu_instances_get_devices_of_their_model_one_instance_each(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("trainer")
    a100 = await gpu_flavor(api, "a100", 1, "NVIDIA A100")
    ids = []
    for _ in range(2):
        ids.append((await api.settled(await order(owner, place, a100)))["instance_ids"][0])
    views = await until(api, owner, ids, lambda v: v["status"] == "running", 30)
    assert [v["gpu_count"] for v in views] == [1, 1]
    specs = fleet.computes[place.host_id].specs
    given = sorted(specs[i].gpus for i in ids)
    assert given == [("0000:3b:00.0",), ("0000:5e:00.0",)], "each its own A100"

    third = await order(owner, place, a100)
    assert third.status == 409, await third.text()
    assert (await third.json())["code"] == "no_capacity", "the L4 is not an A100"

    any_model = await gpu_flavor(api, "any-gpu", 1, None)
    last = (await api.settled(await order(owner, place, any_model)))["instance_ids"][0]
    await until(api, owner, [last], lambda v: v["status"] == "running", 30)
    assert specs[last].gpus == ("0000:86:00.0",)
    host = await (await api.admin.get(f"/v1/admin/hosts/{place.host_id}")).json()
    assert sorted(host["gpus"], key=lambda g: g["address"]) == GPUS
    quotas = await (await owner.get(f"/v1/quotas?region={place.region_id}")).json()
    assert {q["kind"]: q["used"] for q in quotas["quotas"]}["gpus"] == 3


async def test_the_gpu_quota_and_resizes_keep_gpus_as_they_are(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, _ = world
    owner = await api.tenant("frugal")
    await api.settled(
        await api.admin.patch(
            f"/v1/admin/regions/{place.region_id}", json={"quota_defaults": {"gpus": 1}}
        )
    )
    pair = await gpu_flavor(api, "a100-pair", 2, "NVIDIA A100")
    over = await order(owner, place, pair)
    assert over.status == 403, await over.text()
    assert (await over.json())["code"] == "quota_exceeded"

    one = await gpu_flavor(api, "a100-one", 1, "NVIDIA A100")
    instance_id = (await api.settled(await order(owner, place, one)))["instance_ids"][0]
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    plain = place.flavor_id
    refused = await owner.post(
        f"/v1/instances/{instance_id}/actions/resize", json={"flavor_id": plain}
    )
    assert refused.status == 422, await refused.text()
    assert "keeps its GPUs" in (await refused.json())["detail"]


async def test_a_gpu_instance_migrates_cold_only(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, _ = world
    owner = await api.tenant("pinned")
    one = await gpu_flavor(api, "a100-mig", 1, "NVIDIA A100")
    instance_id = (await api.settled(await order(owner, place, one)))["instance_ids"][0]
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    live = await api.admin.post(
        f"/v1/admin/instances/{instance_id}/actions/migrate", json={"live": True}
    )
    assert live.status == 409, await live.text()
    assert "cannot migrate live" in (await live.json())["detail"]
