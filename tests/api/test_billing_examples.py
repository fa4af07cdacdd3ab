"""Worked examples of on-demand billing, each with exact amounts, under a controlled clock.

Prices are minor units (cents) per unit-hour. The instances' lives are the events the
platform records; settlement runs when the test says, as the hourly job would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain import clock
from tests.api.billing_world import BillingWorld, billing_world
from tests.api.conftest import Api

T0 = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
PRICES = {"vcpu": "12", "memory_gb": "4", "disk_gb:standard": "0.5"}


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


def lines(charges: list[dict[str, Any]]) -> list[tuple[str, str, str, int]]:
    return [
        (c["dimension"], f"{c['started_at']:%H:%M}", f"{c['ended_at']:%H:%M}", c["amount_minor"])
        for c in charges
    ]


async def balance(world: BillingWorld, tenant_id: str) -> int:
    response = await world.api.admin.get(f"/v1/admin/tenants/{tenant_id}/billing-account")
    assert response.status == 200, await response.text()
    return int((await response.json())["balance_minor"])


async def postings_sum(world: BillingWorld) -> tuple[int, int]:
    row = await world.api.platform.store.pool.fetchrow(
        f"SELECT coalesce(sum(amount_minor), 0), count(*) FROM {world.schema}.billing_postings"
    )
    return int(row[0]), int(row[1])


async def test_running_ninety_minutes_then_stopped(api: Api) -> None:
    world = await billing_world(api, T0, PRICES)
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    instance = await world.launch(tenant, T0)  # 2 vCPU, 2 GiB, 20 GB
    await world.step(tenant, instance, T0 + timedelta(minutes=90), "stop")

    assert await world.settle(T0 + timedelta(hours=3, minutes=5)) == 7
    assert lines(await world.charges(tenant)) == [
        ("disk_gb:standard", "09:00", "10:00", 10),  # 20 GB x 0.5: the disk bills while stopped
        ("disk_gb:standard", "10:00", "11:00", 10),
        ("disk_gb:standard", "11:00", "12:00", 10),
        ("memory_gb", "09:00", "10:00", 8),  # 2 GB x 4
        ("memory_gb", "10:00", "10:30", 4),
        ("vcpu", "09:00", "10:00", 24),  # 2 vCPU x 12
        ("vcpu", "10:00", "10:30", 12),
    ]
    assert await balance(world, tenant) == -78
    assert await postings_sum(world) == (0, 14)

    # The same round again, and one an hour later: nothing is charged twice.
    assert await world.settle(T0 + timedelta(hours=3, minutes=5)) == 0
    assert await world.settle(T0 + timedelta(hours=4, minutes=5)) == 1
    assert await balance(world, tenant) == -88


async def test_a_resize_mid_hour(api: Api) -> None:
    world = await billing_world(api, T0, {"vcpu": "12"})
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    instance = await world.launch(tenant, T0, vcpus=2)
    await world.step(tenant, instance, T0 + timedelta(minutes=20), "stop")
    await world.resize(tenant, instance, T0 + timedelta(minutes=25), vcpus=4)
    await world.step(tenant, instance, T0 + timedelta(minutes=30), "start")

    await world.settle(T0 + timedelta(hours=1, minutes=5))
    assert lines(await world.charges(tenant)) == [
        ("vcpu", "09:00", "09:20", 8),  # 2 vCPU x 12 x 1/3 h
        ("vcpu", "09:30", "10:00", 24),  # 4 vCPU x 12 x 1/2 h
    ]
    assert await balance(world, tenant) == -32


async def test_a_price_change_mid_day(api: Api) -> None:
    world = await billing_world(api, T0, {"vcpu": "12"})
    await world.publish({"vcpu": "24"}, T0 + timedelta(hours=3, minutes=30))  # 12:30
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    instance = await world.launch(tenant, T0 + timedelta(hours=2), vcpus=1)  # 11:00
    await world.step(tenant, instance, T0 + timedelta(hours=4), "stop")  # 13:00

    await world.settle(T0 + timedelta(hours=5, minutes=5))
    charges = await world.charges(tenant)
    assert lines(charges) == [
        ("vcpu", "11:00", "12:00", 12),
        ("vcpu", "12:00", "12:30", 6),
        ("vcpu", "12:30", "13:00", 12),  # the new version's 24 per hour
    ]
    assert [c["price_version"] for c in charges] == [
        f"{world.book_id}@v1",
        f"{world.book_id}@v1",
        f"{world.book_id}@v2",
    ]


async def test_a_tenant_in_arrears_is_frozen_and_a_recharge_unfreezes_it(api: Api) -> None:
    world = await billing_world(api, T0, PRICES)
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    recharge = f"/v1/admin/tenants/{tenant}/actions/recharge"
    await api.settled(
        await api.admin.post(
            recharge, json={"amount_minor": 50, "currency": "USD", "reference": "card 1"}
        )
    )
    instance = await world.launch(tenant, T0)
    await world.step(tenant, instance, T0 + timedelta(minutes=90), "stop")
    await world.settle(T0 + timedelta(hours=3, minutes=5))
    assert await balance(world, tenant) == 50 - 78
    account = await (await owner.get("/v1/billing/account")).json()
    assert (account["standing"], account["arrears_since"]) == (
        "arrears",
        "2027-03-02T12:05:00+00:00",
    )
    tenant_view = await (await owner.get("/v1/tenant")).json()
    assert tenant_view["status"] == "active", "within the grace days (3 by default)"

    await world.settle(T0 + timedelta(days=3, hours=3, minutes=5))
    tenant_view = await (await owner.get("/v1/tenant")).json()
    assert (tenant_view["status"], tenant_view["freeze_reason"]) == ("frozen", "arrears")
    refused = await owner.post("/v1/projects", json={"name": "while-frozen"})
    assert refused.status == 403, await refused.text()

    owed = -await balance(world, tenant)
    assert owed == 28 + 72 * 10  # the disk kept billing 10 an hour for three more days
    await api.settled(
        await api.admin.post(
            recharge, json={"amount_minor": owed, "currency": "USD", "reference": "wire 2"}
        )
    )
    tenant_view = await (await owner.get("/v1/tenant")).json()
    assert (tenant_view["status"], tenant_view["freeze_reason"]) == ("active", None)
    account = await (await owner.get("/v1/billing/account")).json()
    assert (account["balance_minor"], account["standing"]) == (0, "low")
    total, _ = await postings_sum(world)
    assert total == 0


async def test_a_flavor_priced_instead_of_its_vcpus_and_memory(api: Api) -> None:
    flavor = "flv-" + "0" * 26  # the flavor billing_world's instances have
    world = await billing_world(api, T0, {**PRICES, f"flavor:{flavor}": "30"})
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    instance = await world.launch(tenant, T0)
    await world.step(tenant, instance, T0 + timedelta(minutes=90), "stop")
    await world.settle(T0 + timedelta(hours=2, minutes=5))
    assert lines(await world.charges(tenant)) == [
        ("disk_gb:standard", "09:00", "10:00", 10),
        ("disk_gb:standard", "10:00", "11:00", 10),
        (f"flavor:{flavor}", "09:00", "10:00", 30),  # one instance-hour of the flavor
        (f"flavor:{flavor}", "10:00", "10:30", 15),
    ]


async def test_a_stopped_instance_moved_by_a_cold_migration_bills_its_disk_only(api: Api) -> None:
    world = await billing_world(api, T0, {"vcpu": "12", "disk_gb:standard": "0.5"})
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    instance = await world.launch(tenant, T0)
    await world.step(tenant, instance, T0 + timedelta(minutes=30), "stop")
    world.clock.set(T0 + timedelta(hours=1))
    with clock.using(world.clock):
        instance.migrate("hst-" + "1" * 26, "stp-move", {}, live=False)
    await world.save(tenant, instance)
    assert instance.status == "migrating"

    await world.settle(T0 + timedelta(hours=2, minutes=5))
    assert lines(await world.charges(tenant)) == [
        ("disk_gb:standard", "09:00", "10:00", 10),
        ("disk_gb:standard", "10:00", "11:00", 10),
        ("vcpu", "09:00", "09:30", 12),  # nothing more while it is moved, stopped
    ]
