"""The global configuration's quota defaults bind the region-less scope (projects, keys, users)."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_global_defaults_limit_projects_and_show_as_limits(api: Api) -> None:
    await api.settled(
        await api.admin.patch("/v1/admin/config", json={"quota_defaults": {"projects": 2}})
    )
    owner = await api.tenant("limited")
    for name in ("a", "b"):
        await api.settled(await owner.post("/v1/projects", json={"name": name}))
    refused = await owner.post("/v1/projects", json={"name": "c"})
    assert refused.status == 403 and (await refused.json())["code"] == "quota_exceeded"
    await api.wait_for(await api.platform.store.last_position())
    quotas = await (await owner.get("/v1/quotas")).json()
    projects = next(q for q in quotas["quotas"] if q["kind"] == "projects")
    assert projects == {"region": "*", "kind": "projects", "used": 2, "limit": 2}


async def test_billing_users_see_the_regions_and_flavors_they_are_billed_for(api: Api) -> None:
    owner = await api.tenant("billed")
    billing = await api.sub_account(owner, ["billing"])
    assert (await billing.get("/v1/regions")).status == 200
    assert (await billing.get("/v1/flavors")).status == 200
    assert (await billing.post("/v1/projects", json={"name": "no"})).status == 403
