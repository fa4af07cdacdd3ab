"""The audit log: filters, pages, who sees what, failures with their cause, request ids."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.quota.ledger import ledger_id
from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    audit_rows,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    logged,
    settle,
    tenant_of,
)


async def post(caller: Caller, path: str, body: dict[str, Any], request_id: str) -> Any:
    return await caller.post(path, json=body, headers={"X-Request-Id": request_id})


def by_request(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["request_id"]: r for r in rows}


async def busy_tenant(api: Api) -> tuple[Caller, Caller, str]:
    """A tenant with successes, a failure and a denial, each under a known request id."""
    owner = await api.tenant()
    colleague = await api.sub_account(owner, ["admin"])
    viewer = await api.sub_account(owner, ["read-only"])
    first = await post(owner, "/v1/projects", {"name": "one"}, "a-project-1")
    project = (await api.settled(first))["resource_id"]
    await api.settled(await post(colleague, "/v1/projects", {"name": "two"}, "a-project-2"))
    await api.settled(
        await post(owner, "/v1/roles", {"name": "r", "actions": ["compute:*:read"]}, "a-role")
    )
    failed = await post(
        owner,
        "/v1/users",
        {"email": "x@example.com", "password": "x-password-1234", "roles": ["pilot"]},
        "a-failure",
    )
    assert failed.status == 422
    denied = await post(viewer, "/v1/projects", {"name": "three"}, "a-denial")
    assert denied.status == 403
    # A denial reaches the log after its answer: wait for it.
    assert "a-denial" in await logged(owner, {"a-denial"}, outcome="denied")
    await settle(api)
    return owner, colleague, project


async def test_filters_find_what_they_name(api: Api) -> None:
    owner, colleague, project = await busy_tenant(api)
    everything = await audit_rows(owner)
    mine = by_request(everything)
    assert {"a-project-1", "a-project-2", "a-role", "a-failure", "a-denial"} <= set(mine)

    by_actor = await audit_rows(owner, actor=colleague.user_id)
    assert by_actor and all(r["actor_id"] == colleague.user_id for r in by_actor)
    assert "a-project-2" in by_request(by_actor) and "a-project-1" not in by_request(by_actor)

    by_action = await audit_rows(owner, action="iam:project:create")
    assert {r["action"] for r in by_action} == {"iam:project:create"}
    assert {"a-project-1", "a-project-2", "a-denial"} <= set(by_request(by_action))

    by_resource = await audit_rows(owner, resource=project)
    assert [r["request_id"] for r in by_resource] == ["a-project-1"]
    assert by_resource[0]["outcome"] == "succeeded"

    failures = by_request(await audit_rows(owner, outcome="failed"))
    assert set(failures) == {"a-failure"}
    failure = failures["a-failure"]
    assert failure["error_code"] == "validation_failed"
    assert "pilot" in failure["error_detail"]
    assert failure["action"] == "iam:user:create" and failure["actor_id"] == owner.user_id

    denials = by_request(await audit_rows(owner, outcome="denied"))
    assert set(denials) == {"a-denial"}
    assert denials["a-denial"]["error_code"] == "forbidden"
    assert "iam:project:create" in denials["a-denial"]["error_detail"]

    both = await audit_rows(owner, action="iam:project:create", outcome="succeeded")
    assert set(by_request(both)) == {"a-project-1", "a-project-2"}

    moments = sorted({datetime.fromisoformat(r["occurred_at"]) for r in everything})
    middle = moments[len(moments) // 2]
    stamp = middle.isoformat().replace("+00:00", "Z")
    since = await audit_rows(owner, since=stamp)
    until = await audit_rows(owner, until=stamp)
    ids = {r["operation_id"] for r in everything}
    expected_since = {
        r["operation_id"] for r in everything if datetime.fromisoformat(r["occurred_at"]) >= middle
    }
    assert {r["operation_id"] for r in since} == expected_since
    assert {r["operation_id"] for r in until} == ids - expected_since
    assert since and until


async def test_pages_cover_the_log_once_newest_first(api: Api) -> None:
    owner, _, _ = await busy_tenant(api)
    whole = await audit_rows(owner)
    assert len(whole) >= 8
    pages: list[list[dict[str, Any]]] = []
    params = {"limit": "3"}
    while True:
        body = await (await owner.get("/v1/audit-events", params=params)).json()
        pages.append(body["items"])
        if body["next_page_token"] is None:
            break
        params["page_token"] = body["next_page_token"]
    assert all(len(p) == 3 for p in pages[:-1]) and 1 <= len(pages[-1]) <= 3
    paged = [r["operation_id"] for page in pages for r in page]
    assert paged == [r["operation_id"] for r in whole]
    positions = [r["position"] for page in pages for r in page]
    assert positions == sorted(positions, reverse=True) and len(set(positions)) == len(positions)
    bad = await owner.get("/v1/audit-events", params={"page_token": "yesterday"})
    assert bad.status == 422


async def test_tenants_see_their_own_and_the_admin_sees_all(api: Api) -> None:
    a = await api.tenant()
    b = await api.tenant()
    await api.settled(await post(a, "/v1/projects", {"name": "a"}, "seen-by-a"))
    await api.settled(await post(b, "/v1/projects", {"name": "b"}, "seen-by-b"))
    await settle(api)
    for caller, own, other in ((a, "seen-by-a", "seen-by-b"), (b, "seen-by-b", "seen-by-a")):
        rows = await audit_rows(caller)
        assert {r["tenant_id"] for r in rows} == {tenant_of(caller)}
        assert own in by_request(rows) and other not in by_request(rows)
        refused = await caller.get("/v1/audit-events", params={"tenant_id": tenant_of(a)})
        if caller is b:
            assert refused.status == 422

    everyone = by_request(await audit_rows(api.admin))
    assert {"seen-by-a", "seen-by-b"} <= set(everyone)
    only_a = await audit_rows(api.admin, tenant_id=tenant_of(a))
    assert {r["tenant_id"] for r in only_a} == {tenant_of(a)}
    assert "seen-by-b" not in by_request(only_a)

    operator = await api.sub_account(a, ["operator"])
    assert (await operator.get("/v1/audit-events")).status == 403
    viewer = await api.sub_account(a, ["read-only"])
    assert (await viewer.get("/v1/audit-events")).status == 200


async def test_the_request_id_reaches_the_audit_log_and_every_event(api: Api) -> None:
    owner = await api.tenant()
    tenant_id = tenant_of(owner)
    await settle(api)
    given = "trace-4b1e-given-by-the-client"
    response = await post(owner, "/v1/projects", {"name": "traced"}, given)
    assert response.headers["X-Request-Id"] == given
    body = await api.settled(response)

    entry = by_request(await audit_rows(owner))[given]
    assert entry["operation_id"] == body["operation_id"]
    assert entry["resource_id"] == body["resource_id"]

    events = await api.platform.store.read_all(limit=10**6)
    traced = [e for e in events if e.envelope().request_id == given]
    assert {e.originator_id for e in traced} == {
        body["resource_id"],
        body["operation_id"],
        ledger_id(tenant_id),
    }
    assert max(e.position for e in traced) == body["position"]
    for event in traced:
        envelope = event.envelope()
        assert envelope.correlation_id == given
        assert envelope.tenant_id == tenant_id and envelope.actor.id == owner.user_id

    # A refused command and an unsigned request carry theirs too; one is minted if none given.
    failed = await post(owner, "/v1/projects", {"name": ""}, "trace-invalid")
    assert failed.headers["X-Request-Id"] == "trace-invalid"
    assert (await failed.json())["request_id"] == "trace-invalid"
    anonymous = await owner.client.get("/v1/projects", headers={"X-Request-Id": "trace-anon"})
    assert anonymous.status == 401
    minted = await owner.get("/v1/projects")
    assert minted.headers["X-Request-Id"].startswith("req-")
    denied = await logged(api.admin, {"trace-anon"}, outcome="denied")
    assert denied["trace-anon"]["actor_id"] == "anonymous"
    assert [
        e.envelope().request_id
        for e in await api.platform.store.read_stream(denied["trace-anon"]["operation_id"])
    ] == ["trace-anon"]
