"""Idempotency-Key: a repeat answers what the first did, and nothing is written twice."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from api.services.unit_of_work import UnitOfWork
from domain.quota.ledger import ledger_id
from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    cheap_passwords,  # noqa: F401 (autouse fixture)
    settle,
    tenant_of,
)


async def projects_named(api: Api, owner: Caller, name: str) -> list[dict[str, Any]]:
    await settle(api)
    response = await owner.get("/v1/projects", params={"name": name})
    assert response.status == 200
    return list((await response.json())["items"])


async def created_events(api: Api, project_id: str) -> int:
    return sum(
        1
        for e in await api.platform.store.read_all(limit=10**6)
        if e.originator_id == project_id and e.originator_version == 1
    )


async def used_projects(api: Api, owner: Caller) -> int:
    await settle(api)
    quotas = await (await owner.get("/v1/quotas")).json()
    return int(next(q["used"] for q in quotas["quotas"] if q["kind"] == "projects"))


async def test_same_key_and_body_answer_the_same_operation_once(api: Api) -> None:
    owner = await api.tenant()
    key = {"Idempotency-Key": "create-alpha"}
    first = await owner.post("/v1/projects", json={"name": "alpha"}, headers=key)
    assert first.status == 202
    assert "Idempotent-Replayed" not in first.headers
    body = await first.json()
    for _ in range(2):
        again = await owner.post("/v1/projects", json={"name": "alpha"}, headers=key)
        assert again.status == 202
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.headers["Location"] == first.headers["Location"]
        replayed = await again.json()
        assert replayed["operation_id"] == body["operation_id"]
        assert replayed["resource_id"] == body["resource_id"]
        assert replayed["position"] == body["position"]
    assert [p["id"] for p in await projects_named(api, owner, "alpha")] == [body["resource_id"]]
    assert await created_events(api, body["resource_id"]) == 1
    assert await used_projects(api, owner) == 1


async def test_same_key_with_another_body_is_refused(api: Api) -> None:
    owner = await api.tenant()
    key = {"Idempotency-Key": "create-beta"}
    await api.settled(await owner.post("/v1/projects", json={"name": "beta"}, headers=key))
    other = await owner.post("/v1/projects", json={"name": "gamma"}, headers=key)
    assert other.status == 422
    assert other.content_type == "application/problem+json"
    problem = await other.json()
    assert problem["code"] == "idempotency_key_reused"
    assert problem["request_id"] == other.headers["X-Request-Id"]
    # Another path with the same key is another request too.
    elsewhere = await owner.post("/v1/roles", json={"name": "beta", "actions": []}, headers=key)
    assert (await elsewhere.json())["code"] == "idempotency_key_reused"
    assert await projects_named(api, owner, "gamma") == []
    assert len(await projects_named(api, owner, "beta")) == 1


async def test_keys_belong_to_their_user(api: Api) -> None:
    owner = await api.tenant()
    colleague = await api.sub_account(owner, ["admin"])
    key = {"Idempotency-Key": "shared-key"}
    mine = await api.settled(await owner.post("/v1/projects", json={"name": "d"}, headers=key))
    theirs = await colleague.post("/v1/projects", json={"name": "d"}, headers=key)
    assert theirs.status == 202 and "Idempotent-Replayed" not in theirs.headers
    assert (await theirs.json())["operation_id"] != mine["operation_id"]
    assert len(await projects_named(api, owner, "d")) == 2


@pytest.fixture
async def slow_ledger(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[asyncio.Event]:
    """Hold the next command that loads a quota ledger until the yielded event is set.

    ``slow_ledger.entered`` (set on the event object) tells when that command is deciding.
    """
    release = asyncio.Event()
    entered = asyncio.Event()
    original = UnitOfWork.get

    async def get(self: UnitOfWork, aggregate_id: str, kind: Any, **kwargs: Any) -> Any:
        if aggregate_id.startswith("qta-") and not entered.is_set():
            entered.set()
            await release.wait()
        return await original(self, aggregate_id, kind, **kwargs)

    monkeypatch.setattr(UnitOfWork, "get", get)
    release.entered = entered  # type: ignore[attr-defined]
    yield release
    release.set()


async def test_a_repeat_while_the_first_runs_is_told_to_wait(
    api: Api, slow_ledger: asyncio.Event
) -> None:
    owner = await api.tenant()
    key = {"Idempotency-Key": "slow-one"}
    entered: asyncio.Event = slow_ledger.entered  # type: ignore[attr-defined]
    first = asyncio.create_task(owner.post("/v1/projects", json={"name": "slow"}, headers=key))
    await asyncio.wait_for(entered.wait(), 5)

    racing = await owner.post("/v1/projects", json={"name": "slow"}, headers=key)
    assert racing.status == 409
    assert racing.content_type == "application/problem+json"
    assert (await racing.json())["code"] == "idempotency_key_in_use"
    assert not first.done(), "the first request finished early: the race proved nothing"

    slow_ledger.set()
    answered = await asyncio.wait_for(first, 5)
    assert answered.status == 202
    body = await answered.json()
    after = await owner.post("/v1/projects", json={"name": "slow"}, headers=key)
    assert after.headers["Idempotent-Replayed"] == "true"
    assert (await after.json())["operation_id"] == body["operation_id"]
    assert len(await projects_named(api, owner, "slow")) == 1


async def test_a_repeat_of_a_refused_command_is_refused_again(api: Api) -> None:
    owner = await api.tenant()
    tenant_id = tenant_of(owner)
    await api.settled(
        await api.admin.put(
            f"/v1/admin/tenants/{tenant_id}/quotas", json={"limits": {"projects": 0}}
        )
    )
    key = {"Idempotency-Key": "over-quota"}
    first = await owner.post("/v1/projects", json={"name": "none"}, headers=key)
    assert first.status == 403
    problem = await first.json()
    assert problem["code"] == "quota_exceeded"

    again = await owner.post("/v1/projects", json={"name": "none"}, headers=key)
    assert again.status == 403, "a refused command's repeat must not turn into a 202"
    assert again.content_type == "application/problem+json"
    repeated = await again.json()
    assert (repeated["code"], repeated["detail"]) == (problem["code"], problem["detail"])
    assert await projects_named(api, owner, "none") == []
    ledger = await api.platform.documents.get(api.platform.store.pool, ledger_id(tenant_id))
    assert ledger is not None and ledger.view["usage"].get("*", {}).get("projects", 0) == 0
