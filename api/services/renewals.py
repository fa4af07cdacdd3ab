"""The subscriptions' clock: renewals ordered ahead, terms started, lapsed ones recovered.

Each round looks at the subscriptions still covering a resource and lets each decide on
its own state: an automatic renewal is ordered (its money held) three days before the
end; at the end a held renewal starts the next term; otherwise the resource walks the
recovery policy (grace, stopped, recycle bin, purged), each stage from the moment it was
due, so the events read the same whenever the round ran. Command ids name the step, so
a repeated round does nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from api.services import compute, subscriptions
from api.services.executor import CommandExecutor, Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.billing.account import InsufficientBalance
from domain.billing.subscription import ACTIVE, GRACE, PURGED, RECYCLED, STOPPED, Subscription
from domain.compute.instance import RUNNING, Instance
from domain.errors import DomainError
from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from gateways.waiting import every

log = logging.getLogger(__name__)


class Renewals:
    def __init__(self, executor: CommandExecutor, schema: str) -> None:
        self.executor = executor
        self.schema = schema

    async def due(self) -> list[str]:
        rows = await self.executor.repository.store.pool.fetch(
            f"SELECT resource_id FROM {self.schema}.resource_documents "  # noqa: S608
            "WHERE kind = 'sub' AND view->>'status' = ANY($1::text[]) ORDER BY resource_id",
            ["active", GRACE, STOPPED, RECYCLED],
        )
        return [row[0] for row in rows]

    async def tick(self, now: datetime | None = None) -> int:
        """One round; returns how many subscriptions moved."""
        moment = now or clock.now()
        moved = 0
        for sub_id in await self.due():
            moved += await self.advance(sub_id, moment)
        return moved

    async def advance(self, sub_id: str, now: datetime) -> int:
        subscription = await self.executor.repository.get(sub_id, Subscription)
        step = self._step(subscription, now)
        if step is None:
            return 0
        name, key = step

        async def decide(unit: UnitOfWork) -> Decided:
            sub = await unit.get(sub_id, Subscription)
            await self._apply(unit, sub, name, now)
            return Decided(resource_id=sub_id, body={"step": name})

        context = CommandContext(
            actor=Actor.system("renewals"),
            tenant_id=subscription.tenant_id,
            command_id=f"renewals:{sub_id}:{key}",
        )
        try:
            await self.executor.run(context, f"billing:subscription:{name}", decide)
        except DomainError as error:
            log.warning("subscription %s, %s: %s", sub_id, name, error)
            return 0
        return 1

    @staticmethod
    def _step(sub: Subscription, now: datetime) -> tuple[str, str] | None:
        if sub.renewal_order is not None and now >= sub.ends_at:
            return "renew", f"renew:{sub.terms}"
        if sub.status == ACTIVE and now >= sub.ends_at:
            return "lapse", f"lapse:{sub.terms}"
        if sub.auto_renew and sub.renewal_due(now):
            # A failed attempt (too little money) is tried again the next day.
            return "order-renewal", f"order:{sub.terms}:{now.date().isoformat()}"
        stage = sub.next_stage(now)
        if stage is not None:
            return stage, f"{stage}:{sub.terms}"
        return None

    async def _apply(self, unit: UnitOfWork, sub: Subscription, name: str, now: datetime) -> None:
        if name == "renew":
            await subscriptions.start_renewed_term(unit, sub, sub.ends_at)
        elif name == "order-renewal":
            await self._order(unit, sub, now)
        elif name == "lapse":
            # A last attempt at the end; without the money the term lapses into grace.
            if sub.auto_renew and await self._order(unit, sub, now):
                await subscriptions.start_renewed_term(unit, sub, sub.ends_at)
            else:
                sub.enter(GRACE, sub.ends_at)
        else:
            sub.enter(name, self._stage_due(sub))
            await self._recover(unit, sub, name)

    @staticmethod
    async def _order(unit: UnitOfWork, sub: Subscription, now: datetime) -> bool:
        try:
            await subscriptions.order_renewal(unit, sub)
        except InsufficientBalance as short:
            sub.renewal_failed(short.detail, now)
            return False
        return True

    @staticmethod
    def _stage_due(sub: Subscription) -> datetime:
        waited = {GRACE: "grace_days", STOPPED: "stopped_days", RECYCLED: "recycled_days"}
        assert sub.stage_since is not None
        return sub.stage_since + timedelta(days=sub.recovery[waited[sub.status]])

    @staticmethod
    async def _recover(unit: UnitOfWork, sub: Subscription, stage: str) -> None:
        """What each stage does to the resource itself."""
        instance = await unit.find(sub.resource_id, Instance)
        if instance is None:
            return
        if stage == STOPPED and instance.status == RUNNING:
            instance.stop(new_id("stp"))
        elif stage == RECYCLED:
            instance.delete(new_id("stp"))
        elif stage == PURGED:
            instance.purge()
            await compute.release_host(unit, instance, "subscription lapsed")
            await compute.leave_group(unit, instance)
            await compute.release_quota(unit, instance)


async def run_renewals(renewals: Renewals, stop: asyncio.Event, seconds: float = 60.0) -> None:
    await every(seconds, stop, renewals.tick, "renewals")
