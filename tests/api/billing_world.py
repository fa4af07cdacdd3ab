"""Billing tests' world: a region with a price book, tenants, and instances whose lives are
told as the events the platform records, under a clock the test moves."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from api.services.settlement import Settlement
from domain import clock
from domain.billing.price_book import book_id
from domain.compute.hot_plug import ceiling
from domain.compute.instance import Instance
from domain.metadata import Actor, CommandContext
from projections.runner import wait_for_position
from tests.api.compute_world import create
from tests.api.conftest import Api

BILLING_PROJECTIONS = ("billing_usage", "billing_ledger", "resource_documents")


@dataclass
class BillingWorld:
    api: Api
    clock: clock.ManualClock
    region_id: str
    book_id: str

    async def caught_up(self) -> None:
        head = await self.api.platform.store.last_position()
        for name in BILLING_PROJECTIONS:
            assert await wait_for_position(
                self.api.platform.store.pool, self.api.platform.settings.schema, name, head, 60
            )

    async def at(self, moment: datetime) -> None:
        self.clock.set(moment)

    async def settle(self, moment: datetime) -> int:
        """One settlement round at ``moment`` (the background one is off in these tests)."""
        await self.caught_up()
        self.clock.set(moment)
        with clock.using(self.clock):
            posted = await Settlement(self.api.platform.executor, self.schema).settle(moment)
        await self.caught_up()
        return posted

    @property
    def schema(self) -> str:
        return self.api.platform.settings.schema

    async def publish(self, prices: dict[str, str], effective_from: datetime, **extra: Any) -> None:
        await self.api.settled(
            await self.api.admin.post(
                f"/v1/admin/price-books/{self.book_id}/actions/publish",
                json={"prices": prices, "effective_from": effective_from.isoformat(), **extra},
            )
        )

    async def save(self, tenant_id: str, instance: Instance) -> None:
        context = CommandContext(
            actor=Actor.system("test"), tenant_id=tenant_id, command_id=secrets.token_hex(8)
        )
        with clock.using(self.clock):
            await self.api.platform.repository.save(context, instance)

    async def launch(
        self,
        tenant_id: str,
        at: datetime,
        *,
        vcpus: int = 2,
        memory_mb: int = 2048,
        disk_gb: int = 20,
        region_id: str | None = None,
    ) -> Instance:
        """An instance created at ``at`` that is running from the same moment."""
        self.clock.set(at)
        with clock.using(self.clock):
            instance = Instance(
                tenant_id=tenant_id,
                project_id=None,
                name="billed",
                region_id=region_id or self.region_id,
                flavor_id="flv-" + "0" * 26,
                image_id="img-" + "0" * 26,
                vcpus=vcpus,
                memory_mb=memory_mb,
                disk_gb=disk_gb,
                preemptible=False,
                server_group_id=None,
                requested_at=at,
            )
            instance.schedule("hst-" + "0" * 26, "stp-build", {})
            instance.host_reported("stp-build", "running", None)
        await self.save(tenant_id, instance)
        return instance

    async def step(self, tenant_id: str, instance: Instance, at: datetime, verb: str) -> None:
        """``stop`` or ``start`` at ``at``, reached at once."""
        self.clock.set(at)
        with clock.using(self.clock):
            step = f"stp-{verb}-{secrets.token_hex(3)}"
            getattr(instance, verb)(step)
            instance.host_reported(step, "stopped" if verb == "stop" else "running", None)
        await self.save(tenant_id, instance)

    async def resize(self, tenant_id: str, instance: Instance, at: datetime, vcpus: int) -> None:
        self.clock.set(at)
        with clock.using(self.clock):
            instance.resize(
                "flv-" + "1" * 26,
                vcpus,
                instance.memory_mb,
                step_id=f"stp-resize-{secrets.token_hex(3)}",
                maxima=ceiling(vcpus, instance.memory_mb),
            )
        await self.save(tenant_id, instance)

    async def charges(self, tenant_id: str) -> list[dict[str, Any]]:
        rows = await self.api.platform.store.pool.fetch(
            f"SELECT * FROM {self.schema}.billing_charges WHERE tenant_id = $1 "
            "ORDER BY resource_id, dimension, started_at",
            tenant_id,
        )
        return [dict(row) for row in rows]


async def billing_world(api: Api, start: datetime, prices: dict[str, str]) -> BillingWorld:
    region_id = await create(api, "/v1/admin/regions", {"name": f"r-{secrets.token_hex(3)}"})
    made = await create(
        api, "/v1/admin/price-books", {"name": "list", "currency": "USD", "region_id": region_id}
    )
    assert made == book_id(region_id)
    world = BillingWorld(api, clock.ManualClock(start), region_id, made)
    await world.publish(prices, start - timedelta(hours=1))
    return world
