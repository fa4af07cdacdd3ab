"""GET …/{id}?as_of=TIME: a resource as it was at that moment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from tests.api.conftest import Api


async def test_a_role_as_it_was_before_its_change(api: Api) -> None:
    owner = await api.tenant("travel")
    created = await api.settled(
        await owner.post("/v1/roles", json={"name": "viewer", "actions": ["compute:*:read"]})
    )
    role_id = created["resource_id"]
    await asyncio.sleep(0.05)
    between = datetime.now(tz=UTC).isoformat()
    await asyncio.sleep(0.05)
    await api.settled(
        await owner.put(f"/v1/roles/{role_id}/actions", json={"actions": ["*:*:read"]})
    )
    now = await (await owner.get(f"/v1/roles/{role_id}")).json()
    assert now["actions"] == ["*:*:read"]
    then = await owner.get(f"/v1/roles/{role_id}", params={"as_of": between})
    assert then.status == 200 and then.headers["ETag"] == '"1"'
    assert (await then.json())["actions"] == ["compute:*:read"]
    before = await owner.get(f"/v1/roles/{role_id}", params={"as_of": "2000-01-01T00:00:00Z"})
    assert before.status == 404
    bad = await owner.get(f"/v1/roles/{role_id}", params={"as_of": "yesterday"})
    assert bad.status == 422 and (await bad.json())["code"] == "validation_failed"


async def test_time_travel_respects_tenants(api: Api) -> None:
    owner = await api.tenant("mine")
    stranger = await api.tenant("theirs")
    created = await api.settled(await owner.post("/v1/projects", json={"name": "p"}))
    now = datetime.now(tz=UTC).isoformat()
    response = await stranger.get(f"/v1/projects/{created['resource_id']}", params={"as_of": now})
    assert response.status == 404
