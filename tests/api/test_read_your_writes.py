"""Read your writes: a read given a command's position waits for the read model to reach it.

The resource-documents projection is held still by locking its checkpoint row (the runner
locks that row before applying each batch), so "not yet visible" is a certainty here rather
than a race.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from api import call as api_call
from projections.checkpoints import Checkpoints
from tests.api.conftest import Api
from tests.api.fixtures_world import (
    cheap_passwords,  # noqa: F401 (autouse fixture)
    settle,
)

PROJECTION = "resource_documents"


@asynccontextmanager
async def paused(api: Api, projection: str = PROJECTION) -> AsyncIterator[None]:
    """The projection applies nothing until the block ends."""
    checkpoints = Checkpoints(api.platform.settings.schema)
    async with api.platform.store.pool.acquire() as conn, conn.transaction():
        await checkpoints.lock(conn, projection)
        yield


async def test_a_read_at_the_commands_position_sees_the_write(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.tenant()
    await settle(api)
    async with paused(api):
        created = await owner.post("/v1/projects", json={"name": "fresh"})
        assert created.status == 202
        body = await created.json()
        position, project = body["position"], body["resource_id"]
        assert created.headers["X-Scloud-Position"] == str(position) and position > 0

        # Without a position a list answers what the read model has: not the new project.
        listed = await (await owner.get("/v1/projects")).json()
        assert project not in [p["id"] for p in listed["items"]]

        # A read by id waits, with a position or without one (it knows the project's last
        # write); past the (here shortened) bound it answers 503, never a false 404.
        monkeypatch.setattr(api_call, "READ_YOUR_WRITES_TIMEOUT", 0.3)
        for params in ({"min_position": position}, {}):
            late = await owner.get(f"/v1/projects/{project}", params=params)
            assert late.status == 503
            assert late.content_type == "application/problem+json"
            assert (await late.json())["code"] == "not_yet_visible"
        monkeypatch.setattr(api_call, "READ_YOUR_WRITES_TIMEOUT", 10.0)

        one = asyncio.create_task(
            owner.get(f"/v1/projects/{project}", params={"min_position": position})
        )
        page = asyncio.create_task(
            owner.get("/v1/projects", headers={"X-Scloud-Min-Position": str(position)})
        )
        done, _ = await asyncio.wait({one, page}, timeout=0.5)
        assert not done, "a read answered before the read model reached the position"

    # The projection moves on: the waiting reads answer at once, with the write in them.
    got = await asyncio.wait_for(one, 5)
    assert got.status == 200, await got.text()
    assert (await got.json())["name"] == "fresh"
    listing = await asyncio.wait_for(page, 5)
    assert project in [p["id"] for p in (await listing.json())["items"]]


async def test_min_position_already_reached_answers_at_once(api: Api) -> None:
    owner = await api.tenant()
    body = await api.settled(await owner.post("/v1/projects", json={"name": "old"}))
    started = asyncio.get_running_loop().time()
    response = await owner.get(
        f"/v1/projects/{body['resource_id']}", params={"min_position": body["position"]}
    )
    assert response.status == 200
    assert asyncio.get_running_loop().time() - started < 1.0
    quotas = await owner.get("/v1/quotas", params={"min_position": body["position"]})
    used = {q["kind"]: q["used"] for q in (await quotas.json())["quotas"]}
    assert used["projects"] == 1


async def test_min_position_must_be_a_number(api: Api) -> None:
    owner = await api.tenant()
    for given in ("soon", "1.5", ""):
        response = await owner.get("/v1/projects", headers={"X-Scloud-Min-Position": given})
        assert response.status == 422, given
        assert (await response.json())["code"] == "validation_failed"
        response = await owner.get("/v1/projects", params={"min_position": given})
        assert response.status == 422, given


async def test_the_audit_log_reads_at_a_position_too(api: Api) -> None:
    owner = await api.tenant()
    await settle(api)
    async with paused(api, "audit_log"):
        created = await owner.post(
            "/v1/projects", json={"name": "audited"}, headers={"X-Request-Id": "ryw-audit"}
        )
        position = (await created.json())["position"]
        waiting = asyncio.create_task(
            owner.get("/v1/audit-events", params={"min_position": position})
        )
        done, _ = await asyncio.wait({waiting}, timeout=0.5)
        assert not done, "the audit log answered before it reached the position"
    response = await asyncio.wait_for(waiting, 5)
    assert response.status == 200
    rows = (await response.json())["items"]
    assert "ryw-audit" in [row["request_id"] for row in rows]
