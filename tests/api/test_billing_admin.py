"""The platform's side of billing through the HTTP API: every tenant's transactions, the
month's financial statement once it is closed, and what-if repricing against a draft."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain.billing.statement import content_hash, to_csv
from projections.billing.queries import BillingQueries
from projections.runner import wait_for_position
from tests.api.billing_world import BillingWorld, billing_world
from tests.api.conftest import Api, Caller
from tests.api.test_billing_reads import every_page, json_of

T0 = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
PRICES = {"vcpu": "12", "memory_gb": "4"}
"""No disk price: a stopped instance costs nothing, so the month ends with what ran."""


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


async def closed_march(api: Api) -> tuple[BillingWorld, Caller, Caller]:
    """Acme ran 2 vCPU / 2 GiB for 90 minutes (48), Globex 1 vCPU / 1 GiB for 30 (8);
    the round after the month's end closed March for both."""
    world = await billing_world(api, T0, PRICES)
    acme, globex = await api.tenant(), await api.tenant()
    assert acme.tenant_id is not None and globex.tenant_id is not None
    a = await world.launch(acme.tenant_id, T0)
    await world.step(acme.tenant_id, a, T0 + timedelta(minutes=90), "stop")
    g = await world.launch(globex.tenant_id, T0, vcpus=1, memory_mb=1024)
    await world.step(globex.tenant_id, g, T0 + timedelta(minutes=30), "stop")
    assert await world.settle(T0 + timedelta(hours=3, minutes=5)) == 6
    assert await world.settle(datetime(2027, 4, 1, 0, 5, tzinfo=UTC)) == 0
    return world, acme, globex


async def world_caught_up(api: Api) -> None:
    head = await api.platform.store.last_position()
    assert await wait_for_position(
        api.platform.store.pool, api.platform.settings.schema, "billing_ledger", head, 10
    )


async def test_every_tenants_transactions_and_one_tenants(api: Api) -> None:
    _, acme, globex = await closed_march(api)
    everyone = await every_page(api.admin, "/v1/admin/billing/transactions", limit=4)
    assert {t["tenant_id"] for t in everyone} == {acme.tenant_id, globex.tenant_id}
    assert sum(t["amount_minor"] for t in everyone) == -(48 + 8)
    keys = [(t["position"], t["seq"]) for t in everyone]
    assert keys == sorted(keys, reverse=True)
    acmes = await every_page(
        api.admin, f"/v1/admin/billing/transactions?tenant_id={acme.tenant_id}", limit=3
    )
    assert acmes == await every_page(acme, "/v1/billing/transactions", limit=500)
    assert len(acmes) == 4
    refused = await acme.get("/v1/admin/billing/transactions")
    assert refused.status == 403, await refused.text()

    await api.settled(
        await api.admin.post(
            f"/v1/admin/tenants/{globex.tenant_id}/actions/recharge",
            json={"amount_minor": 700, "currency": "USD", "reference": "wire 9"},
        )
    )
    await world_caught_up(api)
    recharges = await every_page(
        api.admin, "/v1/admin/billing/transactions?entry=Recharged", limit=10
    )
    assert [(r["tenant_id"], r["amount_minor"], r["entry"]) for r in recharges] == [
        (globex.tenant_id, 700, "Recharged")
    ]


async def test_the_platforms_statement_of_a_closed_month(api: Api) -> None:
    world, acme, globex = await closed_march(api)
    queries, pool = BillingQueries(world.schema), api.platform.store.pool
    tenants = sorted(t.tenant_id for t in (acme, globex) if t.tenant_id is not None)
    lines = [line for t in tenants for line in await queries.lines(pool, t, "2027-03")]
    assert len(lines) == 6

    path = "/v1/admin/billing/statements?period=2027-03"
    response = await api.admin.get(path)
    assert response.status == 200 and response.content_type == "application/json"
    body = await response.read()
    assert body == await (await api.admin.get(f"{path}&format=json")).read()  # the same bytes
    document = await response.json()
    assert document["content_hash"] == content_hash(lines)
    assert document["totals"] == [
        {"currency": "USD", "billed_minor": 56, "corrections_minor": 0, "lines": 6}
    ]
    own = {}
    for tenant in tenants:
        export = await json_of(api.admin, f"/v1/tenants/{tenant}/statements/2027-03")
        assert export["status"] == "closed" and export["content_hash"]
        own[tenant] = export["content_hash"]
        assert [x for x in document["lines"] if x["tenant_id"] == tenant] == export["lines"]
    assert [
        (t["tenant_id"], t["status"], t["content_hash"], t["billed_minor"], t["lines"])
        for t in document["tenants"]
    ] == [
        (t, "closed", own[t], 48 if t == acme.tenant_id else 8, 4 if t == acme.tenant_id else 2)
        for t in tenants
    ]

    as_csv = await api.admin.get(f"{path}&format=csv")
    assert as_csv.status == 200 and as_csv.content_type == "text/csv"
    assert await as_csv.read() == to_csv(lines)

    # February was closed too, with nothing on it: the accounts opened with their tenants.
    february = await json_of(api.admin, "/v1/admin/billing/statements?period=2027-02")
    assert [(t["tenant_id"], t["status"], t["lines"]) for t in february["tenants"]] == [
        (t, "closed", 0) for t in tenants
    ]
    assert (february["lines"], february["totals"]) == ([], [])
    for other, status in (("2020-01", 404), ("2027-13", 422), ("March", 422)):
        answer = await api.admin.get(f"/v1/admin/billing/statements?period={other}")
        assert answer.status == status, await answer.text()
    refused = await acme.get(path)
    assert refused.status == 403, await refused.text()


async def test_what_if_a_draft_had_been_in_force(api: Api) -> None:
    world, acme, globex = await closed_march(api)
    saved = await api.admin.post(
        f"/v1/admin/price-books/{world.book_id}/actions/save-draft",
        json={
            "prices": {"vcpu": "24", "memory_gb": "4"},
            "tenant_overrides": {globex.tenant_id: {"discount_percent": "50"}},
        },
    )
    await api.settled(saved)
    found = await json_of(
        api.admin, f"/v1/admin/billing/what-if?period=2027-03&price_book_id={world.book_id}"
    )
    # Acme: vCPU 2 x 24 x 1.5 h = 72 and memory 12 as before; Globex: half of 24 x 0.5 h
    # and half of 4 x 0.5 h.
    expected = {
        acme.tenant_id: (4, 48, 84, 36),
        globex.tenant_id: (2, 8, 7, -1),
    }
    assert {
        t["tenant_id"]: (t["lines"], t["billed_minor"], t["repriced_minor"], t["difference_minor"])
        for t in found["tenants"]
    } == expected
    assert [t["tenant_id"] for t in found["tenants"]] == sorted(expected)
    assert (found["billed_minor"], found["repriced_minor"], found["difference_minor"]) == (
        56,
        91,
        35,
    )
    assert found["draft_version"] == f"{world.book_id}@draft"
    # What was billed stays as it was.
    assert (await json_of(acme, "/v1/billing/statements"))["items"][0]["billed_minor"] == 48

    nothing = await json_of(
        api.admin, f"/v1/admin/billing/what-if?period=2027-02&price_book_id={world.book_id}"
    )
    assert (nothing["tenants"], nothing["difference_minor"]) == ([], 0)
    missing = await api.admin.get(
        f"/v1/admin/billing/what-if?period=2027-03&price_book_id=pbk-{'1' * 26}"
    )
    assert missing.status == 404, await missing.text()
