"""A frozen tenant reads but changes nothing; unfreezing restores it; recharges are kept.

The mutations tried are every tenant-side mutation in the route table (platform-only
``admin:`` actions are refused to tenants frozen or not, and are left out): a new endpoint
is covered without editing this file.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
import pytest

from api.app import endpoints
from domain.billing.account import BillingAccount, account_id
from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    audit_rows,
    call,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    create,
    kinds_in_use,
    sample_body,
    settle,
    tenant_of,
)

_PARAM = re.compile(r"{(\w+)}")
REASON = "invoice 42 unpaid"
SELF_SERVICE = {"/v1/me/actions/change-password"}
"""Mutations without an action, open to every signed-in user: a frozen tenant's users may
still change their own passwords (nothing is created or started)."""
STATE_DEPENDENT_READS = {"/v1/instances/{id}/console": 409}
"""Reads that answer by the resource's state: the console of an instance that is not
running is a conflict, frozen or not (never a refusal for being frozen)."""


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    """Every one of the denials below is recorded one by one (one source sends them all)."""
    return {"denials_per_source": 100_000}


def tenant_side(action: str | None) -> bool:
    return action is not None and not action.startswith("admin:")


async def freeze(api: Api, tenant_id: str, reason: str = REASON) -> None:
    await api.settled(
        await api.admin.post(
            f"/v1/admin/tenants/{tenant_id}/actions/freeze", json={"reason": reason}
        )
    )


async def test_a_frozen_tenant_reads_but_changes_nothing(api: Api) -> None:
    table = endpoints()
    owner = await api.tenant()
    tenant_id = tenant_of(owner)
    objects = {kind: await create(kind, api, owner) for kind in kinds_in_use(table)}
    key = await api.settled(await owner.post("/v1/api-keys", json={"name": "robot"}))
    robot = Caller(owner.client, key["api_key"], owner.user_id, tenant_id)
    colleague = await api.sub_account(owner, ["admin"])
    await freeze(api, tenant_id)

    tenant = await (await owner.get("/v1/tenant")).json()
    assert (tenant["status"], tenant["freeze_reason"]) == ("frozen", REASON)
    assert (await (await owner.get("/v1/me")).json())["tenant_frozen"] is True

    denied: dict[str, str] = {}
    for endpoint in table:
        if endpoint.public or not (tenant_side(endpoint.action) or endpoint.action is None):
            continue
        path = endpoint.path.replace("{id}", objects.get(endpoint.kind or "", ""))
        path = _PARAM.sub(r"no-such-\1", path)
        where = f"{endpoint.method} {endpoint.path}"
        if not endpoint.mutation:
            if endpoint.path.count("{") <= 1:
                response, text = await call(owner, "GET", path)
                wanted = STATE_DEPENDENT_READS.get(endpoint.path, 200)
                assert response.status == wanted, f"{where}: a frozen tenant cannot read: {text}"
            continue
        if endpoint.path in SELF_SERVICE:
            continue
        body = sample_body(endpoint.body) if endpoint.body is not None else None
        for name, caller in (("owner", owner), ("key", robot), ("sub-account", colleague)):
            request_id = f"frozen-{len(denied)}"
            response, text = await call(
                caller, endpoint.method, path, body=body, headers={"X-Request-Id": request_id}
            )
            assert response.status == 403, f"{name}: {where} while frozen: {text}"
            problem = msgspec.json.decode(text)
            assert problem["code"] == "forbidden", where
            assert "tenant is frozen" in problem["detail"], where
            denied[request_id] = f"{name}: {where}"
    assert len(denied) >= 3 * 10

    await settle(api)
    logged = {r["request_id"]: r for r in await audit_rows(owner, outcome="denied")}
    for request_id, what in denied.items():
        assert request_id in logged, f"{what}: the denial is not in the tenant's audit log"
        assert "tenant is frozen" in (logged[request_id]["error_detail"] or ""), what

    await api.settled(await api.admin.post(f"/v1/admin/tenants/{tenant_id}/actions/unfreeze"))
    for caller in (owner, robot, colleague):
        made = await caller.post("/v1/projects", json={"name": "after-thaw"})
        assert made.status == 202, await made.text()
    tenant = await (await owner.get("/v1/tenant")).json()
    assert (tenant["status"], tenant["freeze_reason"]) == ("active", None)


async def test_recharges_are_recorded_and_show_on_the_balance(api: Api) -> None:
    owner = await api.tenant()
    tenant_id = tenant_of(owner)
    await freeze(api, tenant_id)
    path = f"/v1/admin/tenants/{tenant_id}/actions/recharge"
    first = await api.settled(
        await api.admin.post(
            path,
            json={"amount_minor": 12_500, "currency": "USD", "reference": "wire 7"},
            headers={"X-Request-Id": "recharge-1"},
        )
    )
    await api.settled(
        await api.admin.post(
            path, json={"amount_minor": 500, "currency": "USD", "reference": "card 8"}
        )
    )
    wrong = await api.admin.post(
        path, json={"amount_minor": 900, "currency": "EUR", "reference": "wire 9"}
    )
    assert wrong.status == 422
    assert (await wrong.json())["code"] == "validation_failed"
    await settle(api)

    for view in (
        await (await owner.get("/v1/tenant")).json(),
        await (await api.admin.get(f"/v1/admin/tenants/{tenant_id}")).json(),
    ):
        assert view["status"] == "frozen", "a recharge alone does not lift an admin's freeze"
    for account in (
        await (await owner.get("/v1/billing/account")).json(),
        await (await api.admin.get(f"/v1/admin/tenants/{tenant_id}/billing-account")).json(),
    ):
        assert account["balance_minor"] == 13_000
    aggregate = await api.platform.repository.get(account_id(tenant_id), BillingAccount)
    assert aggregate.balance_minor == 13_000
    recharges = [
        msgspec.json.decode(e.state)
        for e in await api.platform.store.read_stream(account_id(tenant_id))
        if e.topic.endswith(".Recharged")
    ]
    assert [(r["amount_minor"], r["currency"], r["reference"]) for r in recharges] == [
        (12_500, "USD", "wire 7"),
        (500, "USD", "card 8"),
    ]
    entries = await audit_rows(api.admin, resource=tenant_id, action="admin:tenant:recharge")
    assert [e["outcome"] for e in entries] == ["failed", "succeeded", "succeeded"]
    assert entries[-1]["request_id"] == "recharge-1"
    assert entries[-1]["operation_id"] == first["operation_id"]
