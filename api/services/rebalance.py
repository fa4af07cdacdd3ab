"""Load rebalancing: a host loaded above the threshold for a sustained period is relieved by
live-migrating one of its running instances to a host below the threshold.

Each round reads the heartbeat loads (held in memory by the health watcher). A host must stay
over the threshold for ``after`` seconds before one instance leaves it; the clock starts again
then, so a host sheds one instance per period until it is under the threshold. The smallest
running instance goes (the cheapest to move); the scheduler picks its target among the hosts
under the threshold, with its usual filters. Each move is a command of its own, audited as
``compute:instance:rebalance`` by the system actor ``rebalancer``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from api.services import compute, migration
from api.services.executor import CommandExecutor, CommandFailed, Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.compute.instance import RUNNING
from domain.errors import DomainError
from domain.metadata import Actor, CommandContext
from gateways.bus.host_health import HostHealthWatcher
from gateways.eventstore.schema import checked_schema
from gateways.waiting import every

log = logging.getLogger(__name__)
ACTOR = Actor.system("rebalancer")


class Rebalancer:
    def __init__(
        self,
        executor: CommandExecutor,
        schema: str,
        health: HostHealthWatcher,
        threshold: Callable[[], float],
        after: Callable[[], float],
    ) -> None:
        """``threshold`` is the load per core (0: off), ``after`` the sustained seconds; both
        are read each round."""
        self.executor = executor
        self.pool = executor.repository.store.pool
        self.health = health
        self.threshold = threshold
        self.after = after
        self.over_since: dict[str, datetime] = {}
        self._documents = f"{checked_schema(schema)}.resource_documents"

    def loads(self, host_ids: list[str], now: datetime) -> dict[str, float]:
        """The live load per core of every healthy host that reports one."""
        loads: dict[str, float] = {}
        for host_id in host_ids:
            healthy, load = self.health.health(host_id, now)
            if healthy and load is not None:
                loads[host_id] = load.cpu_load_per_core
        return loads

    async def run_once(self, now: datetime) -> list[str]:
        """One round; the instances it started migrating."""
        threshold = self.threshold()
        if threshold <= 0:
            self.over_since.clear()
            return []
        host_ids = [
            row[0]
            for row in await self.pool.fetch(
                f"SELECT resource_id FROM {self._documents} "  # noqa: S608 - checked schema
                "WHERE kind = 'hst' ORDER BY resource_id"
            )
        ]
        loads = self.loads(host_ids, now)
        relief = [host_id for host_id, load in loads.items() if load < threshold]
        sustained = timedelta(seconds=self.after())
        moved: list[str] = []
        for host_id, load in sorted(loads.items()):
            if load < threshold:
                self.over_since.pop(host_id, None)
                continue
            since = self.over_since.setdefault(host_id, now)
            if now - since < sustained or not relief:
                continue
            instance_id = await self.relieve(host_id, host_ids, relief, now)
            if instance_id is not None:
                moved.append(instance_id)
                self.over_since[host_id] = now  # the next one after another period
        return moved

    async def relieve(
        self, host_id: str, host_ids: list[str], relief: list[str], now: datetime
    ) -> str | None:
        """Start live-migrating the host's smallest running instance; its id, or None."""
        row = await self.pool.fetchrow(
            f"SELECT resource_id, tenant_id FROM {self._documents} "  # noqa: S608
            "WHERE kind = 'i' AND view->>'host_id' = $1 AND view->>'status' = $2 "
            # Passthrough devices do not migrate live: such instances stay.
            "AND coalesce((view->>'gpu_count')::int, 0) = 0 "
            "ORDER BY (view->>'vcpus')::int, (view->>'memory_mb')::int, resource_id LIMIT 1",
            host_id,
            RUNNING,
        )
        if row is None:
            return None
        instance_id, tenant_id = row
        health = {h: compute.Health(*self.health.health(h, now)) for h in host_ids}

        async def decide(unit: UnitOfWork) -> Decided:
            return await migration.migrate_instance(
                unit,
                instance_id,
                live=True,
                host_id=None,
                host_ids=host_ids,
                health=health,
                among=relief,
            )

        context = CommandContext(
            actor=ACTOR,
            tenant_id=tenant_id,
            command_id=f"rebalance:{host_id}:{instance_id}:{int(now.timestamp())}",
        )
        try:
            await self.executor.run(context, "compute:instance:rebalance", decide)
        except CommandFailed as failed:  # recorded as a failed operation; tried next period
            log.warning("rebalance %s off %s: %s", instance_id, host_id, failed.error.detail)
            return None
        except DomainError as error:
            log.warning("rebalance %s off %s: %s", instance_id, host_id, error)
            return None
        return str(instance_id)


async def run_rebalancer(rebalancer: Rebalancer, stop: asyncio.Event, seconds: float = 1.0) -> None:
    await rebalancer.health.start()
    await every(seconds, stop, lambda: rebalancer.run_once(clock.now()), "rebalancer")
