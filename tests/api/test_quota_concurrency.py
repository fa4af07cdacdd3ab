"""Fifty concurrent creates against a quota of ten: exactly ten, and a rebuild agrees."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from domain.quota.ledger import QuotaLedger, ledger_id
from projections.resources.documents import ResourceDocuments
from projections.runner import ProjectionRunner
from tests.api.conftest import Api
from tests.api.fixtures_world import (
    cheap_passwords,  # noqa: F401 (autouse fixture)
    settle,
    tenant_of,
)
from tests.integration.conftest import drop_schema

LIMIT = 10
ATTEMPTS = 50


async def rows(api: Api, table: str, where: str = "", *args: Any) -> list[tuple[Any, ...]]:
    sql = f"SELECT * FROM {table} {where} ORDER BY resource_id"
    return [tuple(r) for r in await api.platform.store.pool.fetch(sql, *args)]


CREATES: dict[str, tuple[str, Callable[[int], dict[str, Any]]]] = {
    "projects": ("/v1/projects", lambda n: {"name": f"race-{n}"}),
    "sub_accounts": (
        "/v1/users",
        lambda n: {"email": f"race-{n}@example.com", "password": "race-password-123"},
    ),
}


@pytest.mark.parametrize("kind", sorted(CREATES))
async def test_fifty_concurrent_creates_leave_exactly_the_quota(
    api: Api, database_url: str, kind: str
) -> None:
    owner = await api.tenant()
    tenant_id = tenant_of(owner)
    await api.settled(
        await api.admin.put(f"/v1/admin/tenants/{tenant_id}/quotas", json={"limits": {kind: LIMIT}})
    )
    path, body = CREATES[kind]
    answers = await asyncio.gather(*(owner.post(path, json=body(n)) for n in range(ATTEMPTS)))
    statuses = Counter(a.status for a in answers)
    assert statuses == {202: LIMIT, 403: ATTEMPTS - LIMIT}, statuses
    created = set()
    for answer in answers:
        if answer.status == 202:
            created.add((await answer.json())["resource_id"])
        else:
            assert answer.content_type == "application/problem+json"
            problem = await answer.json()
            assert problem["code"] == "quota_exceeded", problem
            assert problem["request_id"] == answer.headers["X-Request-Id"]

    await settle(api)
    listed = await (await owner.get(path, params={"limit": 500})).json()
    assert {p["id"] for p in listed["items"]} - {owner.user_id} == created
    quotas = await (await owner.get("/v1/quotas")).json()
    line = next(q for q in quotas["quotas"] if q["kind"] == kind)
    assert (line["used"], line["limit"]) == (LIMIT, LIMIT)
    ledger = await api.platform.repository.get(ledger_id(tenant_id), QuotaLedger)
    assert set(ledger.allocations) == created

    # The usage read model, rebuilt from position 0, equals the live one row for row.
    store = api.platform.store
    live = ResourceDocuments(api.platform.settings.schema)
    scratch = f"{api.platform.settings.schema}_quota"
    try:
        rebuilt = ResourceDocuments(scratch)
        runner = ProjectionRunner(store, rebuilt)
        await runner.setup()
        events, _ = await runner.rebuild()
        head = runner.position
        assert events == len(await store.read_all(limit=10**6, until=head))
        await api.wait_for(head)
        where = "WHERE resource_id = $1"
        live_ledger = await rows(api, live.table, where, ledger_id(tenant_id))
        assert live_ledger, "no live ledger document"
        assert await rows(api, rebuilt.table, where, ledger_id(tenant_id)) == live_ledger
        # Other writers (a host's late outcomes) may have moved on since: compare what both
        # built up to the rebuild's head.
        moved = "WHERE resource_id NOT IN (SELECT resource_id FROM {} WHERE position > $1)"
        assert await rows(api, rebuilt.table, moved.format(live.table), head) == await rows(
            api, live.table, moved.format(live.table), head
        )
    finally:
        await drop_schema(database_url, scratch)


async def test_a_regions_limits_read_as_they_are_enforced(api: Api) -> None:
    owner = await api.tenant()
    tenant_id = tenant_of(owner)
    region = await api.settled(
        await api.admin.post(
            "/v1/admin/regions",
            json={"name": "quota-region", "quota_defaults": {"instances": 3, "vcpus": 12}},
        )
    )
    region_id = region["resource_id"]
    await api.settled(
        await api.admin.put(
            f"/v1/admin/tenants/{tenant_id}/quotas",
            json={"region": region_id, "limits": {"vcpus": 40}},
        )
    )
    for caller, path in (
        (owner, "/v1/quotas"),
        (api.admin, f"/v1/admin/tenants/{tenant_id}/quotas"),
    ):
        shown = await (await caller.get(path, params={"region": region_id})).json()
        limits = {q["kind"]: q["limit"] for q in shown["quotas"]}
        # The tenant's override, else the region's default, else the platform's.
        assert (limits["vcpus"], limits["instances"], limits["disks"]) == (40, 3, 40)
