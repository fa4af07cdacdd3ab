"""Billing rebuilt from position 0 exports the very same statements, byte for byte, for a
month with thousands of resources: the ledger is a function of the events alone."""

from __future__ import annotations

import random
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from domain import clock
from domain.compute.instance import Instance
from domain.metadata import Actor, CommandContext
from projections.billing.ledger import BillingLedger
from projections.billing.queries import BillingQueries
from projections.billing.usage import MeteredUsage
from projections.runner import ProjectionRunner
from tests.api.billing_world import billing_world
from tests.api.conftest import Api
from tests.integration.conftest import drop_schema

START = datetime(2027, 1, 1, tzinfo=UTC)
TENANTS = 4
PER_TENANT = 600


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


def lived(tenant_id: str, region_id: str, rng: random.Random) -> Instance:
    """An instance of January: up for some hours, stopped, recycled, then purged."""
    born = START + timedelta(days=rng.randrange(30), minutes=rng.randrange(1440))
    manual = clock.ManualClock(born)
    with clock.using(manual):
        instance = Instance(
            tenant_id=tenant_id,
            project_id=None,
            name="vm",
            region_id=region_id,
            flavor_id="flv-" + "0" * 26,
            image_id="img-" + "0" * 26,
            vcpus=rng.choice([1, 2, 4]),
            memory_mb=rng.choice([1024, 2048, 4096]),
            disk_gb=rng.choice([10, 20, 40]),
            preemptible=False,
            server_group_id=None,
            requested_at=born,
        )
        instance.schedule("hst-" + "0" * 26, "stp-b", {})
        instance.host_reported("stp-b", "running", None)
        manual.advance(timedelta(minutes=rng.randrange(30, 300)))
        instance.stop("stp-s")
        instance.host_reported("stp-s", "stopped", None)
        manual.advance(timedelta(minutes=rng.randrange(10, 120)))
        instance.delete("stp-d")
        instance.host_reported("stp-d", "stopped", None)
        manual.advance(timedelta(minutes=rng.randrange(10, 120)))
        instance.purge()
    return instance


async def test_rebuilt_billing_exports_the_same_bytes(api: Api, database_url: str) -> None:
    world = await billing_world(
        api, START, {"vcpu": "1.7", "memory_gb": "0.31", "disk_gb:standard": "0.043"}
    )
    rng = random.Random(20270101)
    tenants = [str((await api.tenant()).tenant_id) for _ in range(TENANTS)]
    for tenant_id in tenants:
        instances = [lived(tenant_id, world.region_id, rng) for _ in range(PER_TENANT)]
        for chunk in range(0, len(instances), 100):
            context = CommandContext(
                actor=Actor.system("test"), tenant_id=tenant_id, command_id=secrets.token_hex(8)
            )
            await api.platform.repository.save(context, *instances[chunk : chunk + 100])
    await world.settle(datetime(2027, 2, 1, 3, tzinfo=UTC))  # rates January and closes it

    store, pool = api.platform.store, api.platform.store.pool
    live = BillingQueries(world.schema)
    lines = await pool.fetchval(f"SELECT count(*) FROM {world.schema}.billing_charges")
    assert lines > TENANTS * PER_TENANT * 3, lines
    scratch = f"{world.schema}_billing"
    try:
        for projection in (MeteredUsage(scratch), BillingLedger(scratch)):
            runner = ProjectionRunner(store, projection)
            await runner.setup()
            await runner.rebuild()
        rebuilt = BillingQueries(scratch)
        for tenant_id in tenants:
            statement = await live.statement(pool, tenant_id, "2027-01")
            assert statement is not None and statement["status"] == "closed"
            assert statement["content_hash"] is not None
            again = await rebuilt.statement(pool, tenant_id, "2027-01")
            assert again == statement
            for form in ("csv", "json"):
                exported = await live.export(pool, tenant_id, "2027-01", form)
                assert exported is not None and len(exported) > 10_000
                assert await rebuilt.export(pool, tenant_id, "2027-01", form) == exported
    finally:
        await drop_schema(database_url, scratch)
