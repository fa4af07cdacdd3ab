"""Every read model rebuilt from position 0 equals, row for row, the one built live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from api.services import subscriptions
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.metadata import Actor, CommandContext
from projections.runner import ProjectionRunner
from tests.api.billing_world import billing_world
from tests.api.conftest import Api
from tests.integration.conftest import drop_schema


async def table_rows(pool: asyncpg.Pool, table: str) -> list[tuple[object, ...]]:
    rows = await pool.fetch(f'SELECT * FROM {table} AS t ORDER BY t::text COLLATE "C"')
    return [tuple(r) for r in rows]


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


async def billed(api: Api) -> None:
    """Usage rated over a month's end, a recharge, a closed statement, a prepaid term."""
    start = datetime(2027, 1, 31, 22, 0, tzinfo=UTC)
    world = await billing_world(api, start, {"vcpu": "12", "disk_gb:standard": "0.5"})
    owner = await api.tenant("billed")
    assert owner.tenant_id is not None
    await api.settled(
        await api.admin.post(
            f"/v1/admin/tenants/{owner.tenant_id}/actions/recharge",
            json={"amount_minor": 100_000, "currency": "USD", "reference": "r"},
        )
    )
    instance = await world.launch(owner.tenant_id, start)
    await world.step(owner.tenant_id, instance, start + timedelta(minutes=150), "stop")
    await world.settle(start + timedelta(hours=3))
    tenant_id = owner.tenant_id

    async def subscribe(unit: UnitOfWork) -> Decided:
        return await subscriptions.subscribe(unit, tenant_id, instance.id, "monthly", True)

    context = CommandContext(actor=Actor.system("test"), tenant_id=tenant_id, command_id="sub-1")
    with clock.using(world.clock):
        await api.platform.executor.run(context, "billing:subscription:create", subscribe)


async def test_rebuilt_projections_equal_live_ones(api: Api, database_url: str) -> None:
    await billed(api)
    owner = await api.tenant("rebuild")
    for n in range(5):
        await api.settled(await owner.post("/v1/projects", json={"name": f"p{n}"}))
    key = await api.settled(await owner.post("/v1/api-keys", json={"name": "ci"}))
    await api.settled(await owner.post(f"/v1/api-keys/{key['key_id']}/actions/revoke"))
    await api.sub_account(owner, ["operator"])
    denied = await owner.get("/v1/admin/tenants")
    assert denied.status == 403
    tenant_id = owner.tenant_id
    await api.settled(
        await api.admin.post(f"/v1/admin/tenants/{tenant_id}/actions/freeze", json={"reason": "x"})
    )
    head = await api.platform.store.last_position()
    await api.wait_for(head)

    store = api.platform.store
    scratch = f"{store.schema}_rebuilt"
    try:
        for live in api.platform.projections():
            rebuilt = type(live)(scratch)  # type: ignore[call-arg]
            runner = ProjectionRunner(store, rebuilt)
            await runner.setup()
            events, _ = await runner.rebuild()
            everything = await store.read_all(limit=10**6)
            assert events == len(everything)
            for live_table, rebuilt_table in zip(live.tables(), rebuilt.tables(), strict=True):
                expected = await table_rows(store.pool, live_table)
                assert expected, f"{live_table} is empty: the comparison would prove nothing"
                assert await table_rows(store.pool, rebuilt_table) == expected, live_table
    finally:
        await drop_schema(database_url, scratch)
