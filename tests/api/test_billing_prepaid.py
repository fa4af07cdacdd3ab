"""Prepaid terms, worked through with exact amounts under a controlled clock: a monthly
subscription upgraded on day 10, an automatic renewal, and a lapsed term walking through
grace, stopped, recycle bin and purge. The instances are real (simulated hosts)."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api.services import subscriptions
from api.services.executor import Decided
from api.services.renewals import Renewals
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.metadata import Actor, CommandContext
from hostd.fleet import SimulatedFleet
from projections.runner import wait_for_position
from tests.api.compute_world import World, compute_world, create, until_healthy
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import until
from tests.api.test_instance_resize import flavor

START = datetime(2027, 3, 1, tzinfo=UTC)
MONTHLY_2_VCPU = 2 * 10 * 730  # 10 per vCPU-hour, 730 hours a month


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


@pytest.fixture
async def world(api: Api, nats_url: str) -> AsyncIterator[World]:
    world = await compute_world(api)
    fleet = SimulatedFleet(1, nats_url, host_ids=[world.host_id], heartbeat_every=0.5)
    await fleet.start()
    try:
        await api.platform.host_health.start()
        await until_healthy(api, world.host_id)
        book = await create(
            api,
            "/v1/admin/price-books",
            {"name": "list", "currency": "USD", "region_id": world.region_id},
        )
        await api.settled(
            await api.admin.post(
                f"/v1/admin/price-books/{book}/actions/publish",
                json={"prices": {"vcpu": "10"}},
            )
        )
        yield world
    finally:
        await fleet.close()


async def customer(api: Api, world: World, balance: int) -> tuple[Caller, str]:
    owner = await api.tenant()
    assert owner.tenant_id is not None
    if balance:
        await api.settled(
            await api.admin.post(
                f"/v1/admin/tenants/{owner.tenant_id}/actions/recharge",
                json={"amount_minor": balance, "currency": "USD", "reference": "wire"},
            )
        )
    made = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "paid",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
            },
        )
    )
    instance_id = made["instance_ids"][0]
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    return owner, instance_id


async def at(api: Api, moment: datetime, tenant_id: str, action: str, decide: Any) -> Decided:
    """Run one billing command as if at ``moment``."""
    context = CommandContext(
        actor=Actor.system("test"), tenant_id=tenant_id, command_id=secrets.token_hex(8)
    )
    with clock.using(clock.ManualClock(moment)):
        outcome = await api.platform.executor.run(context, action, decide)
    await caught_up(api)
    return Decided(resource_id=outcome.resource_id, body=outcome.body)


async def account(api: Api, tenant_id: str) -> dict[str, Any]:
    response = await api.admin.get(f"/v1/admin/tenants/{tenant_id}/billing-account")
    return dict(await response.json())


async def tick(api: Api, moment: datetime) -> int:
    with clock.using(clock.ManualClock(moment)):
        moved = await Renewals(api.platform.executor, api.platform.settings.schema).tick(moment)
    await caught_up(api)
    return moved


async def caught_up(api: Api) -> None:
    head = await api.platform.store.last_position()
    await api.wait_for(head)
    for name in ("billing_ledger", "billing_orders"):
        assert await wait_for_position(
            api.platform.store.pool, api.platform.settings.schema, name, head, 10
        )


async def sub_view(owner: Caller, sub_id: str) -> dict[str, Any]:
    return dict(await (await owner.get(f"/v1/billing/subscriptions/{sub_id}")).json())


async def test_a_monthly_subscription_upgraded_on_day_ten(api: Api, world: World) -> None:
    owner, instance_id = await customer(api, world, 100_000)
    tenant = owner.tenant_id
    assert tenant is not None

    quoted = await owner.post(
        "/v1/billing/subscriptions?validate_only=true",
        json={"instance_id": instance_id, "term": "monthly"},
    )
    assert quoted.status == 200 and (await quoted.json())["amount_minor"] == MONTHLY_2_VCPU

    async def subscribe(unit: UnitOfWork) -> Decided:
        return await subscriptions.subscribe(unit, tenant, instance_id, "monthly", False)

    made = await at(api, START, tenant, "billing:subscription:create", subscribe)
    assert made.body["amount_minor"] == 14_600
    assert made.body["ends_at"] == "2027-04-01T00:00:00+00:00"
    sub_id = str(made.resource_id)

    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 30)
    bigger = await create(api, "/v1/admin/flavors", flavor("four", 4, 1024))
    around = await owner.post(
        f"/v1/instances/{instance_id}/actions/resize", json={"flavor_id": bigger}
    )
    assert around.status == 409, "a prepaid instance is resized through its subscription"
    assert sub_id in (await around.json())["detail"]

    async def upgrade(unit: UnitOfWork) -> Decided:
        sub = await subscriptions.subscription_of(unit, sub_id, tenant)
        return await subscriptions.resize(unit, sub, bigger)

    day_ten = START + timedelta(days=9)  # 22 of the term's 31 days are left
    upgraded = await at(api, day_ten, tenant, "billing:subscription:resize", upgrade)
    assert upgraded.body["amount_minor"] == 10_361  # 14,600 x 22/31 = 10,361.29
    assert (await account(api, tenant))["balance_minor"] == 100_000 - 14_600 - 10_361

    smaller = await create(api, "/v1/admin/flavors", flavor("two", 2, 1024))

    async def downgrade(unit: UnitOfWork) -> Decided:
        sub = await subscriptions.subscription_of(unit, sub_id, tenant)
        return await subscriptions.resize(unit, sub, smaller)

    later = await at(
        api, START + timedelta(days=15), tenant, "billing:subscription:resize", downgrade
    )
    assert later.body["amount_minor"] == 0, "a downgrade takes effect at renewal"
    view = await sub_view(owner, sub_id)
    assert (view["size"]["vcpus"], view["renewal_size"]["vcpus"]) == (4, 2)
    assert (await account(api, tenant))["balance_minor"] == 75_039
    listed = await (await owner.get("/v1/billing/orders")).json()
    assert [(o["kind"], o["status"], o["amount_minor"]) for o in listed["items"]] == [
        ("upgrade", "paid", 10_361),
        ("new", "paid", 14_600),
    ]
    everyone = await (await api.admin.get(f"/v1/admin/billing/orders?tenant_id={tenant}")).json()
    assert everyone["items"] == listed["items"]

    rows = await api.platform.store.pool.fetch(
        f"SELECT category, amount_minor, started_at, ended_at FROM "
        f"{api.platform.settings.schema}.billing_charges WHERE tenant_id = $1 ORDER BY started_at",
        tenant,
    )
    assert [(r[0], r[1], f"{r[2]:%m-%d}", f"{r[3]:%m-%d}") for r in rows] == [
        ("Purchase", 14_600, "03-01", "04-01"),
        ("Purchase", 10_361, "03-10", "04-01"),
    ]


async def test_a_create_with_validate_only_answers_the_quote_and_creates_nothing(
    api: Api, world: World
) -> None:
    owner, _ = await customer(api, world, 0)
    body = {
        "name": "quoted",
        "region_id": world.region_id,
        "flavor_id": world.flavor_id,
        "image_id": world.image_id,
        "count": 3,
    }
    quoted = await owner.post("/v1/instances?validate_only=true", json=body)
    assert quoted.status == 200, await quoted.text()
    answer = await quoted.json()
    assert answer["on_demand_per_hour"] == {"vcpu": "60"}  # 3 x 2 vCPU x 10
    assert answer["terms_minor"] == {"monthly": 3 * 14_600, "annual": 3 * 12 * 14_600}
    listed = await (await owner.get("/v1/instances")).json()
    assert len(listed["items"]) == 1, "only the customer's first instance"


async def test_an_automatic_renewal_holds_then_spends_the_next_term(api: Api, world: World) -> None:
    owner, instance_id = await customer(api, world, 30_000)
    tenant = owner.tenant_id
    assert tenant is not None

    async def subscribe(unit: UnitOfWork) -> Decided:
        return await subscriptions.subscribe(unit, tenant, instance_id, "monthly", True)

    sub_id = str(
        (await at(api, START, tenant, "billing:subscription:create", subscribe)).resource_id
    )
    assert await tick(api, START + timedelta(days=20)) == 0, "too early to renew"
    assert await tick(api, datetime(2027, 3, 29, tzinfo=UTC)) == 1
    held = await account(api, tenant)
    assert (held["balance_minor"], held["held_minor"], held["available_minor"]) == (
        15_400,
        14_600,
        800,
    )
    assert await tick(api, datetime(2027, 3, 29, 12, tzinfo=UTC)) == 0, "ordered once"
    orders = (await (await owner.get("/v1/billing/orders")).json())["items"]
    assert [(o["kind"], o["status"]) for o in orders] == [("renewal", "held"), ("new", "paid")]
    assert await tick(api, datetime(2027, 4, 1, 0, 5, tzinfo=UTC)) == 1
    view = await sub_view(owner, sub_id)
    assert (view["status"], view["terms"], view["ends_at"]) == (
        "active",
        2,
        "2027-05-01T00:00:00+00:00",
    )
    spent = await account(api, tenant)
    assert (spent["balance_minor"], spent["held_minor"]) == (800, 0)
    orders = (await (await owner.get("/v1/billing/orders")).json())["items"]
    assert [(o["kind"], o["status"]) for o in orders] == [("renewal", "paid"), ("new", "paid")]

    # Not enough money for a third term: the attempt fails (and is said), the term lapses.
    assert await tick(api, datetime(2027, 4, 28, tzinfo=UTC)) == 1
    events = [e.topic.rsplit(".", 1)[1] for e in await api.platform.store.read_stream(sub_id)]
    assert events[-1] == "RenewalFailed"
    assert await tick(api, datetime(2027, 5, 1, 0, 1, tzinfo=UTC)) == 1
    assert (await sub_view(owner, sub_id))["status"] == "grace"


async def test_a_lapsed_term_walks_through_grace_stop_recycle_bin_and_purge(
    api: Api, world: World
) -> None:
    owner, instance_id = await customer(api, world, 20_000)
    tenant = owner.tenant_id
    assert tenant is not None

    async def subscribe(unit: UnitOfWork) -> Decided:
        return await subscriptions.subscribe(
            unit, tenant, instance_id, "monthly", False, {"grace_days": 2, "stopped_days": 3}
        )

    sub_id = str(
        (await at(api, START, tenant, "billing:subscription:create", subscribe)).resource_id
    )
    end = datetime(2027, 4, 1, tzinfo=UTC)

    async def instance() -> dict[str, Any]:
        return dict(await (await owner.get(f"/v1/instances/{instance_id}")).json())

    assert await tick(api, end - timedelta(seconds=1)) == 0
    assert await tick(api, end + timedelta(hours=5)) == 1
    view = await sub_view(owner, sub_id)
    assert (view["status"], view["stage_since"]) == ("grace", "2027-04-01T00:00:00+00:00")
    assert (await instance())["status"] == "running", "a grace period keeps it running"

    assert await tick(api, end + timedelta(days=1)) == 0
    assert await tick(api, end + timedelta(days=2, hours=1)) == 1
    assert (await sub_view(owner, sub_id))["stage_since"] == "2027-04-03T00:00:00+00:00"
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 30)

    assert await tick(api, end + timedelta(days=5)) == 1  # stopped for 3 days
    await until(api, owner, [instance_id], lambda v: v["status"] == "recycled", 30)
    assert (await sub_view(owner, sub_id))["status"] == "recycled"

    assert await tick(api, end + timedelta(days=12)) == 1  # 7 days in the recycle bin
    await until(api, owner, [instance_id], lambda v: v["status"] == "purged", 30)
    assert (await sub_view(owner, sub_id))["status"] == "purged"
    quotas = await (await owner.get(f"/v1/quotas?region={world.region_id}")).json()
    assert {q["kind"]: q["used"] for q in quotas["quotas"]}["instances"] == 0
    stages = [
        e.topic.rsplit(".", 1)[1]
        for e in await api.platform.store.read_stream(sub_id)
        if e.topic.endswith(("StageEntered", "Created"))
    ]
    assert stages == ["Created", "StageEntered", "StageEntered", "StageEntered", "StageEntered"]
    await asyncio.sleep(0)
