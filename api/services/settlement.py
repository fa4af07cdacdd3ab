"""Hourly settlement: metered usage rated against the price books and posted per tenant.

Each round rates every interval up to the last whole hour that ended at least ``lag``
ago (outcomes may still be arriving for the minutes before), one command per tenant.
The command id names the tenant and the hour, and the account skips what it has
posted already, so a round repeated after a crash, or run by two workers, charges
nothing twice. Months are closed by the same command once their last hour is rated.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from api.services import billing
from api.services.executor import CommandExecutor, Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.billing.metering import Segment, to_rate
from domain.billing.rating import Charge, Usage, floor_hour, rate
from domain.errors import DomainError
from domain.metadata import Actor, CommandContext
from gateways.waiting import every

log = logging.getLogger(__name__)
LAG = timedelta(minutes=2)
_views = msgspec.json.Decoder(dict[str, Any]).decode


class Settlement:
    def __init__(self, executor: CommandExecutor, schema: str, lag: timedelta = LAG) -> None:
        self.executor = executor
        self.schema = schema
        self.lag = lag

    @property
    def _pool(self) -> Any:
        return self.executor.repository.store.pool

    async def price_books(self) -> dict[str, dict[str, Any]]:
        rows = await self._pool.fetch(
            f"SELECT resource_id, view::text FROM {self.schema}.resource_documents "  # noqa: S608
            "WHERE kind = 'pbk'"
        )
        return {row[0]: _views(row[1]) for row in rows}

    async def unrated(self, cutoff: datetime) -> dict[str, list[Usage]]:
        """Per tenant, what is still to be rated up to ``cutoff``."""
        rows = await self._pool.fetch(
            f"SELECT resource_id, dimension, started_at, ended_at, quantity, tenant_id, "  # noqa: S608
            f"region_id, project_id, rated_until, flavor_id FROM {self.schema}.billing_usage "
            "WHERE (ended_at IS NULL OR rated_until IS NULL OR rated_until < ended_at) "
            "AND started_at < $1 AND coalesce(rated_until, started_at) < $1",
            cutoff,
        )
        found: dict[str, list[Usage]] = defaultdict(list)
        for row in rows:
            usage = to_rate(
                Segment(
                    resource_id=row["resource_id"],
                    tenant_id=row["tenant_id"],
                    region_id=row["region_id"],
                    project_id=row["project_id"],
                    dimension=row["dimension"],
                    quantity=Decimal(row["quantity"]),
                    start=row["started_at"],
                    end=row["ended_at"],
                    rated_until=row["rated_until"],
                    flavor_id=row["flavor_id"],
                ),
                cutoff,
            )
            if usage is not None:
                found[usage.tenant_id].append(usage)
        return found

    async def closable(self, cutoff: datetime) -> list[str]:
        """Tenants with an account whose earlier months are not all closed yet."""
        month_start = cutoff.replace(day=1, hour=0)
        rows = await self._pool.fetch(
            f"SELECT a.tenant_id FROM {self.schema}.billing_accounts a "  # noqa: S608
            f"LEFT JOIN {self.schema}.resource_documents d ON d.resource_id = a.account_id "
            "WHERE (d.view->'closed_periods'->>-1) < $1 OR ((d.view->'closed_periods'->>-1) "
            "IS NULL AND (d.view->>'opened_period') <= $1)",
            f"{(month_start - timedelta(days=1)):%Y-%m}",
        )
        return [row[0] for row in rows]

    async def settle(self, now: datetime | None = None) -> int:
        """One round; returns how many charges were posted."""
        moment = now or clock.now()
        cutoff = floor_hour(moment - self.lag)
        books = await self.price_books()
        work = await self.unrated(cutoff)
        for tenant_id in await self.closable(cutoff):
            work.setdefault(tenant_id, [])
        posted = 0
        for tenant_id, usages in sorted(work.items()):
            charges = [charge for usage in usages for charge in rate(usage, books)]
            posted += await self._post(tenant_id, charges, cutoff)
        return posted

    async def _post(self, tenant_id: str, charges: list[Charge], cutoff: datetime) -> int:
        async def decide(unit: UnitOfWork) -> Decided:
            return await billing.post_charges(unit, tenant_id, charges, cutoff)

        context = CommandContext(
            actor=Actor.system("billing"),
            tenant_id=tenant_id,
            command_id=f"billing:settle:{tenant_id}:{cutoff.isoformat()}",
        )
        try:
            outcome = await self.executor.run(context, "billing:charges:post", decide)
        except DomainError as error:
            log.warning("settling %s: %s", tenant_id, error)
            return 0
        return 0 if outcome.replayed else int(outcome.body.get("posted", 0))


async def run_settlement(
    settlement: Settlement, stop: asyncio.Event, seconds: float = 30.0
) -> None:
    await every(seconds, stop, settlement.settle, "settlement")
