"""The FOCUS CSV a tenant exports: unit prices in currency units that make its costs.

One tenant with a negotiated discount and term discounts has, over March and April, an
on-demand instance, a monthly term renewed automatically, an annual term, a monthly term
upgraded on day ten, and usage reported after March was closed (a correction in April).
On every line of both statements, ListUnitPrice x PricingQuantity is ListCost and
ContractedUnitPrice x PricingQuantity is EffectiveCost, within the rounding to a cent.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from api.services import subscriptions
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.compute.instance import Instance
from tests.api.billing_world import BillingWorld
from tests.api.compute_world import World, compute_world, create
from tests.api.conftest import Api
from tests.api.test_billing_prepaid import at, tick
from tests.api.test_instance_resize import flavor

START = datetime(2027, 3, 1, tzinfo=UTC)
CENT = Decimal("0.01")


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


async def launch(billing: BillingWorld, world: World, tenant_id: str, moment: datetime) -> Instance:
    """An instance of the world's flavor and image, running on its host from ``moment``."""
    billing.clock.set(moment)
    with clock.using(billing.clock):
        instance = Instance(
            tenant_id=tenant_id,
            project_id=None,
            name="billed",
            region_id=world.region_id,
            flavor_id=world.flavor_id,
            image_id=world.image_id,
            vcpus=2,
            memory_mb=1024,
            disk_gb=10,
            preemptible=False,
            server_group_id=None,
            requested_at=moment,
        )
        instance.schedule(world.host_id, "stp-build", {})
        instance.host_reported("stp-build", "running", None)
    await billing.save(tenant_id, instance)
    return instance


async def subscribe(api: Api, tenant_id: str, instance_id: str, term: str, renew: bool) -> str:
    async def decide(unit: UnitOfWork) -> Decided:
        return await subscriptions.subscribe(unit, tenant_id, instance_id, term, renew)

    made = await at(api, START, tenant_id, "billing:subscription:create", decide)
    return str(made.resource_id)


async def test_every_kind_of_line_has_unit_prices_that_make_its_costs(api: Api) -> None:
    world = await compute_world(api)
    book = await create(
        api,
        "/v1/admin/price-books",
        {"name": "list", "currency": "USD", "region_id": world.region_id},
    )
    billing = BillingWorld(api, clock.ManualClock(START), world.region_id, book)
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    await billing.publish(
        {"vcpu": "10", "memory_gb": "3", "disk_gb:standard": "0.5"},
        START - timedelta(hours=1),
        tenant_overrides={tenant: {"discount_percent": "12.5"}},
        term_discounts={"monthly": "5", "annual": "17"},
    )
    await api.settled(
        await api.admin.post(
            f"/v1/admin/tenants/{tenant}/actions/recharge",
            json={"amount_minor": 10_000_000, "currency": "USD", "reference": "wire"},
        )
    )

    monthly = await launch(billing, world, tenant, START)
    await subscribe(api, tenant, monthly.id, "monthly", True)
    annual = await launch(billing, world, tenant, START)
    await subscribe(api, tenant, annual.id, "annual", False)
    upgraded = await launch(billing, world, tenant, START)
    upgraded_sub = await subscribe(api, tenant, upgraded.id, "monthly", False)
    await billing.step(tenant, upgraded, START + timedelta(days=5), "stop")
    bigger = await create(api, "/v1/admin/flavors", flavor("four", 4, 1024))

    async def upgrade(unit: UnitOfWork) -> Decided:
        sub = await subscriptions.subscription_of(unit, upgraded_sub, tenant)
        return await subscriptions.resize(unit, sub, bigger)

    paid = await at(api, START + timedelta(days=9), tenant, "billing:subscription:resize", upgrade)
    assert paid.body["amount_minor"] > 0

    # On demand from 09:20 to 11:07:13: pieces of 40 minutes, an hour, and 7 min 13 s.
    on_demand = await launch(billing, world, tenant, datetime(2027, 3, 2, 9, 20, tzinfo=UTC))
    await billing.step(tenant, on_demand, datetime(2027, 3, 2, 11, 7, 13, tzinfo=UTC), "stop")
    assert await tick(api, datetime(2027, 3, 29, tzinfo=UTC)) == 1  # the renewal is held
    assert await tick(api, datetime(2027, 4, 1, 0, 5, tzinfo=UTC)) >= 1  # and spent
    assert await billing.settle(datetime(2027, 4, 1, 0, 5, tzinfo=UTC)) > 0  # March closes

    # Usage of March's last hour reported after March was closed: a correction in April.
    late = await launch(billing, world, tenant, datetime(2027, 3, 31, 23, 0, tzinfo=UTC))
    await billing.step(tenant, late, datetime(2027, 3, 31, 23, 30, tzinfo=UTC), "stop")
    assert await billing.settle(datetime(2027, 4, 1, 2, 5, tzinfo=UTC)) > 0

    seen: set[tuple[str, str, str, str]] = set()
    for period in ("2027-03", "2027-04"):
        response = await owner.get(f"/v1/tenants/{tenant}/statements/{period}?format=csv")
        assert response.status == 200, await response.text()
        rows = list(csv.DictReader(io.StringIO(await response.text(), newline="")))
        assert rows, period
        for row in rows:
            quantity = Decimal(row["PricingQuantity"])
            listed = Decimal(row["ListUnitPrice"])
            contracted = Decimal(row["ContractedUnitPrice"])
            assert abs(listed * quantity - Decimal(row["ListCost"])) <= CENT / 2, row
            assert abs(contracted * quantity - Decimal(row["EffectiveCost"])) <= CENT / 2, row
            assert contracted < listed, f"every line of this tenant is discounted: {row}"
            kind = "renewal" if row["ChargePeriodStart"].startswith("2027-04-01") else ""
            if row["ChargePeriodStart"].startswith("2027-03-10"):
                kind = "upgrade"
            seen.add((row["ChargeCategory"], row["ChargeClass"], row["x_Dimension"], kind))
    assert seen >= {
        ("Usage", "", "vcpu", ""),
        ("Usage", "", "disk_gb:standard", ""),
        ("Usage", "Correction", "vcpu", ""),
        ("Purchase", "", "subscription:monthly", ""),
        ("Purchase", "", "subscription:annual", ""),
        ("Purchase", "", "subscription:monthly", "upgrade"),
        ("Purchase", "", "subscription:monthly", "renewal"),
    }, sorted(seen)
