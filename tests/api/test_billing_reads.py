"""The tenant's billing pages through the HTTP API, on charges settled under a controlled clock.

Two instances of one tenant across a UTC midnight, one of another tenant; every page is
checked for exact amounts, its order, its filters, its cursor pages, and for holding
nothing of the other tenant's. Statement exports must be the read model's exact bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain import clock
from domain.billing.account import next_period, period_of
from domain.billing.statement import content_hash
from gateways.billing.pdf import statement_pdf
from projections.billing.queries import BillingQueries
from tests.api.billing_world import BillingWorld, billing_world
from tests.api.conftest import Api, Caller

T0 = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
PRICES = {"vcpu": "12", "memory_gb": "4", "disk_gb:standard": "0.5"}
SETTLED_AT = datetime(2027, 3, 3, 1, 5, tzinfo=UTC)


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


async def json_of(caller: Caller, path: str, status: int = 200) -> Any:
    response = await caller.get(path)
    assert response.status == status, await response.text()
    return await response.json()


async def every_page(caller: Caller, path: str, limit: int) -> list[dict[str, Any]]:
    """All items of a list, a page of ``limit`` at a time, by its tokens and Link headers."""
    items: list[dict[str, Any]] = []
    joiner = "&" if "?" in path else "?"
    response = await caller.get(f"{path}{joiner}limit={limit}")
    while True:
        assert response.status == 200, await response.text()
        page = await response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        if page["next_page_token"] is None:
            assert "Link" not in response.headers
            return items
        assert len(page["items"]) == limit
        link = response.headers["Link"]
        assert link.endswith('>; rel="next"') and page["next_page_token"] in link
        response = await caller.get(link[1 : link.index(">")])


async def two_tenants(api: Api) -> tuple[BillingWorld, Caller, str, str, Caller]:
    """Acme runs ``a`` 90 minutes from 09:00 (then stopped, its disk still billing) and ``b``
    from 23:00; Globex runs one instance. Settled at 01:05 the next day, then Acme pays 500."""
    world = await billing_world(api, T0, PRICES)
    acme, globex = await api.tenant(), await api.tenant()
    assert acme.tenant_id is not None and globex.tenant_id is not None
    a = await world.launch(acme.tenant_id, T0)  # 2 vCPU, 2 GiB, 20 GB
    await world.step(acme.tenant_id, a, T0 + timedelta(minutes=90), "stop")
    b = await world.launch(
        acme.tenant_id, datetime(2027, 3, 2, 23, 0, tzinfo=UTC), vcpus=1, memory_mb=1024, disk_gb=10
    )
    await world.launch(globex.tenant_id, T0, vcpus=8)
    await world.settle(SETTLED_AT)
    await api.settled(
        await api.admin.post(
            f"/v1/admin/tenants/{acme.tenant_id}/actions/recharge",
            json={"amount_minor": 500, "currency": "USD", "reference": "wire 1"},
        )
    )
    await world.caught_up()
    return world, acme, a.id, b.id, globex


async def test_transactions_charges_and_daily_usage(api: Api) -> None:
    _, acme, a, b, globex = await two_tenants(api)
    assert acme.tenant_id is not None

    transactions = await every_page(acme, "/v1/billing/transactions", limit=4)
    # a: 2 vCPU and memory lines, 16 disk lines (09:00 to 01:00); b: 3 lines on each day.
    assert len(transactions) == 1 + 2 + 2 + 16 + 6
    recharge, *charges = transactions
    assert (recharge["entry"], recharge["amount_minor"], recharge["charge_id"]) == (
        "Recharged",
        500,
        None,
    )
    assert {t["entry"] for t in charges} == {"ChargesPosted"}
    assert all(t["amount_minor"] < 0 and t["charge_id"] for t in charges)
    assert sum(t["amount_minor"] for t in charges) == -(48 + 150 + 10 + 42)
    keys = [(t["position"], t["seq"]) for t in transactions]
    assert keys == sorted(keys, reverse=True) and len(set(keys)) == len(keys)
    assert {t["tenant_id"] for t in transactions} == {acme.tenant_id}
    assert {t["ledger_account"] for t in transactions} == {f"tenant:{acme.tenant_id}"}
    account = await json_of(acme, "/v1/billing/account")
    assert account["balance_minor"] == sum(t["amount_minor"] for t in transactions)

    lines = await every_page(acme, f"/v1/billing/charges?resource_id={a}", limit=5)
    assert len(lines) == 20 and {line["resource_id"] for line in lines} == {a}
    starts = [(line["start"], line["charge_id"]) for line in lines]
    assert starts == sorted(starts, reverse=True)
    assert sum(line["amount_minor"] for line in lines) == 48 + 150 + 10
    since, until = "2027-03-02T10:00:00Z", "2027-03-02T12:00:00Z"
    window = await json_of(acme, f"/v1/billing/charges?resource_id={a}&since={since}&until={until}")
    cut = [(w["dimension"], w["start"][11:16], w["amount_minor"]) for w in window["items"]]
    assert sorted(cut) == [
        ("disk_gb:standard", "10:00", 10),
        ("disk_gb:standard", "11:00", 10),
        ("memory_gb", "10:00", 4),
        ("vcpu", "10:00", 12),
    ]
    everything = await json_of(acme, "/v1/billing/charges?limit=500")
    assert {line["resource_id"] for line in everything["items"]} == {a, b}
    assert {line["tenant_id"] for line in everything["items"]} == {acme.tenant_id}

    daily = await every_page(acme, "/v1/billing/usage/daily", limit=1)
    first, second = sorted((a, b))
    assert [(d["day"], d["resource_id"], d["amount_minor"], d["lines"]) for d in daily] == [
        ("2027-03-03", first, 10 if first == a else 21, 1 if first == a else 3),
        ("2027-03-03", second, 10 if second == a else 21, 1 if second == a else 3),
        ("2027-03-02", first, 198 if first == a else 21, 19 if first == a else 3),
        ("2027-03-02", second, 198 if second == a else 21, 19 if second == a else 3),
    ]
    only = await json_of(acme, "/v1/billing/usage/daily?since=2027-03-02&until=2027-03-03")
    assert {(d["day"], d["amount_minor"]) for d in only["items"]} == {
        ("2027-03-02", 198),
        ("2027-03-02", 21),
    }

    theirs = await json_of(globex, "/v1/billing/charges?limit=500")
    assert {line["resource_id"] for line in theirs["items"]}.isdisjoint({a, b})
    assert await json_of(globex, f"/v1/billing/charges?resource_id={a}") == {
        "items": [],
        "next_page_token": None,
    }
    refused = await acme.get("/v1/billing/transactions?page_token=not-ours")
    assert refused.status == 422, await refused.text()


def months_before(period: str, first: str) -> list[str]:
    """The periods from ``first`` up to (not including) ``period``, newest first."""
    found = []
    while first < period:
        found.insert(0, first)
        first = next_period(first)
    return found


async def test_statements_list_and_export_the_read_models_exact_bytes(api: Api) -> None:
    world, acme, _, _, globex = await two_tenants(api)
    tenant = acme.tenant_id
    assert tenant is not None and globex.tenant_id is not None
    statements = await json_of(acme, "/v1/billing/statements")
    march, *earlier = statements["items"]
    assert march == {
        "tenant_id": tenant,
        "period": "2027-03",
        "currency": "USD",
        "status": "open",
        "billed_minor": 250,
        "lines": 26,
        "content_hash": None,
        "export": f"/v1/tenants/{tenant}/statements/2027-03",
    }
    # The account opened with the tenant: each month since is closed, with nothing on it.
    assert [s["period"] for s in earlier] == months_before("2027-03", period_of(clock.now()))
    assert {(s["status"], s["billed_minor"], s["lines"], s["content_hash"]) for s in earlier} == {
        ("closed", 0, 0, content_hash([]))
    }
    queries = BillingQueries(world.schema)
    pool = api.platform.store.pool
    for form, media in (("json", "application/json"), ("csv", "text/csv")):
        response = await acme.get(f"/v1/tenants/{tenant}/statements/2027-03?format={form}")
        assert response.status == 200, await response.text()
        assert response.content_type == media
        assert await response.read() == await queries.export(pool, tenant, "2027-03", form)
    as_pdf = await acme.get(f"/v1/tenants/{tenant}/statements/2027-03?format=pdf")
    assert as_pdf.status == 200 and as_pdf.content_type == "application/pdf"
    json_export = await queries.export(pool, tenant, "2027-03", "json")
    assert json_export is not None
    assert await as_pdf.read() == statement_pdf(json_export)  # rendered from the JSON
    document = await json_of(acme, f"/v1/tenants/{tenant}/statements/2027-03")
    assert document["totals"] == {"billed_minor": 250, "corrections_minor": 0, "lines": 26}
    csv_text = await (await acme.get(f"/v1/tenants/{tenant}/statements/2027-03?format=csv")).text()
    assert csv_text.startswith("BillingAccountId,SubAccountId,") and csv_text.count("\r\n") == 27

    for path in (
        f"/v1/tenants/{tenant}/statements/2020-01",  # before the tenant was
        f"/v1/tenants/{tenant}/statements/March",
        f"/v1/tenants/{globex.tenant_id}/statements/2027-03",  # another tenant's
    ):
        response = await acme.get(path)
        assert response.status == 404, await response.text()
        assert response.content_type == "application/problem+json"
    theirs = await acme.get(f"/v1/tenants/{globex.tenant_id}/statements/2027-03")
    problem = await theirs.json()
    assert problem["detail"] == f"{globex.tenant_id} does not exist"


async def test_the_billing_role_reads_them_and_an_operator_does_not(api: Api) -> None:
    _, acme, _, _, _ = await two_tenants(api)
    clerk = await api.sub_account(acme, ["billing"])
    operator = await api.sub_account(acme, ["operator"])
    paths = (
        "/v1/billing/transactions",
        "/v1/billing/charges",
        "/v1/billing/usage/daily",
        "/v1/billing/statements",
        f"/v1/tenants/{acme.tenant_id}/statements/2027-03",
    )
    for path in paths:
        assert await json_of(clerk, path) == await json_of(acme, path), path
        refused = await operator.get(path)
        assert refused.status == 403, f"{path}: {await refused.text()}"
    staff = await json_of(api.admin, "/v1/billing/transactions")
    assert staff == {"items": [], "next_page_token": None}  # staff read /v1/admin/billing
