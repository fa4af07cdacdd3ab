"""Quotas read per region: without a region, every region and the region-less scope with
what the tenant really uses there; a region that does not exist is not answered with zeros."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from domain.quota.kinds import GLOBAL_KINDS, QUOTA_KINDS
from hostd.fleet import SimulatedFleet
from tests.api.compute_world import World, compute_world, create, until_healthy
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import until


@pytest.fixture
async def world(api: Api, nats_url: str) -> AsyncIterator[World]:
    world = await compute_world(api)
    fleet = SimulatedFleet(1, nats_url, host_ids=[world.host_id], heartbeat_every=0.5)
    await fleet.start()
    try:
        await api.platform.host_health.start()
        await until_healthy(api, world.host_id)
        yield world
    finally:
        await fleet.close()


def by_scope(answer: dict[str, object]) -> dict[tuple[str, str], tuple[int, int]]:
    lines = answer["quotas"]
    assert isinstance(lines, list)
    return {(q["region"], q["kind"]): (q["used"], q["limit"]) for q in lines}


async def running_instance(api: Api, owner: Caller, world: World) -> str:
    made = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "counted",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
            },
        )
    )
    instance_id = str(made["instance_ids"][0])
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    return instance_id


async def test_without_a_region_every_region_answers_with_its_real_usage(
    api: Api, world: World
) -> None:
    owner = await api.tenant()
    other_region = await create(
        api, "/v1/admin/regions", {"name": "quiet", "quota_defaults": {"instances": 3}}
    )
    await running_instance(api, owner, world)
    await api.settled(await owner.post("/v1/projects", json={"name": "p"}))
    tenant_id = owner.tenant_id

    for caller, path in (
        (owner, "/v1/quotas"),
        (api.admin, f"/v1/admin/tenants/{tenant_id}/quotas"),
    ):
        response = await caller.get(path)
        assert response.status == 200, await response.text()
        answer = await response.json()
        assert (answer["tenant_id"], answer["region"]) == (tenant_id, None)
        lines = by_scope(answer)
        regional = [kind for kind in QUOTA_KINDS if kind not in GLOBAL_KINDS]
        assert set(lines) == {("*", kind) for kind in GLOBAL_KINDS} | {
            (region, kind) for region in (world.region_id, other_region) for kind in regional
        }
        assert lines[(world.region_id, "instances")] == (1, 20)
        assert lines[(world.region_id, "vcpus")] == (2, 80)
        assert lines[(world.region_id, "memory_mb")] == (1024, 160 * 1024)
        assert lines[(other_region, "instances")] == (0, 3), "the region's own default"
        assert lines[("*", "projects")] == (1, 20)
        # The region-less scope counts no instances: it is not shown as using none.
        assert ("*", "instances") not in lines

    one = await (await owner.get("/v1/quotas", params={"region": world.region_id})).json()
    assert one["region"] == world.region_id
    assert {line["region"] for line in one["quotas"]} == {world.region_id}
    assert by_scope(one)[(world.region_id, "instances")] == (1, 20)
    scope = await (await owner.get("/v1/quotas", params={"region": "*"})).json()
    assert set(by_scope(scope)) == {("*", kind) for kind in GLOBAL_KINDS}


async def test_an_unknown_region_is_not_found(api: Api) -> None:
    owner = await api.tenant()
    missing = f"rgn-{'1' * 26}"
    for caller, path in (
        (owner, "/v1/quotas"),
        (api.admin, f"/v1/admin/tenants/{owner.tenant_id}/quotas"),
    ):
        for region in (missing, "atlantis"):
            response = await caller.get(path, params={"region": region})
            assert response.status == 404, await response.text()
            assert (await response.json())["code"] == "not_found"
    # Nor can an admin set limits in a region that does not exist.
    refused = await api.admin.put(
        f"/v1/admin/tenants/{owner.tenant_id}/quotas",
        json={"region": missing, "limits": {"instances": 5}},
    )
    assert refused.status == 422, await refused.text()
    problem = await refused.json()
    assert problem["code"] == "validation_failed" and missing in problem["detail"]
