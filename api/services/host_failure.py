"""Host failure: a host whose heartbeat deadline passes is marked down and emptied.

Each round compares the hosts' documents with the heartbeat bucket (held in memory by the
health watcher). A host whose last beat is older than the deadline is marked down by an
event on its aggregate; every instance on a down host, or on one in maintenance (a drain),
is then evacuated by a command of its own, so the audit log shows each step. A host whose
beat comes back is marked up; the guests it held are removed from it by the commands the
evacuations left in its queue (see the dispatcher), so it never runs them a second time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import msgspec

from api.services import compute
from api.services.executor import CommandExecutor, CommandFailed, Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.compute.instance import DELETING, EVACUABLE
from domain.errors import DomainError
from domain.inventory.host import MAINTENANCE, Host
from domain.metadata import Actor, CommandContext
from gateways.bus.host_health import HostHealthWatcher
from gateways.eventstore.schema import checked_schema
from gateways.waiting import every

log = logging.getLogger(__name__)
ACTOR = Actor.system("host-failure")
RETRY_EVERY = 30.0
"""Seconds between attempts to evacuate an instance that fitted nowhere."""
_MOVABLE = sorted({*EVACUABLE, DELETING})


class HostRow(msgspec.Struct, frozen=True):
    id: str
    version: int
    status: str
    down: bool


class HostFailures:
    def __init__(
        self,
        executor: CommandExecutor,
        schema: str,
        health: HostHealthWatcher,
        down_after: Callable[[], float],
    ) -> None:
        """``down_after`` is the heartbeat deadline in seconds (read each round)."""
        self.executor = executor
        self.pool = executor.repository.store.pool
        self.health = health
        self.down_after = down_after
        self._documents = f"{checked_schema(schema)}.resource_documents"

    async def hosts(self) -> list[HostRow]:
        rows = await self.pool.fetch(
            f"SELECT resource_id, version, view->>'status', "  # noqa: S608 - checked schema
            f"coalesce((view->>'down')::boolean, false) FROM {self._documents} "
            "WHERE kind = 'hst' ORDER BY resource_id"
        )
        return [HostRow(*row) for row in rows]

    async def run_once(self, now: datetime) -> None:
        hosts = await self.hosts()
        deadline = timedelta(seconds=self.down_after())
        emptied: dict[str, str] = {}
        for host in hosts:
            beat = self.health.beats.get(host.id)
            if beat is None:
                continue  # never heard from: unhealthy for the scheduler, not lost
            late = now - beat.at > deadline
            if late and not host.down:
                await self.mark_down(host, beat.at, deadline)
            elif not late and host.down:
                await self.mark_up(host)
            if late:
                emptied[host.id] = f"host {host.id} missed its heartbeat deadline"
            elif host.status == MAINTENANCE:
                emptied[host.id] = f"host {host.id} is drained for maintenance"
        if emptied:
            await self.evacuate(emptied, [host.id for host in hosts], now)

    async def mark_down(self, host: HostRow, last_seen: datetime, deadline: timedelta) -> None:
        reason = f"no heartbeat since {last_seen.isoformat()} (deadline {deadline})"

        async def decide(unit: UnitOfWork) -> Decided:
            aggregate = await unit.get(host.id, Host)
            if not aggregate.down:
                aggregate.mark_down(last_seen, reason)
            return Decided(resource_id=host.id)

        await self._run(f"host-down:{host.id}:v{host.version}", None, "compute:host:down", decide)

    async def mark_up(self, host: HostRow) -> None:
        async def decide(unit: UnitOfWork) -> Decided:
            aggregate = await unit.get(host.id, Host)
            if aggregate.down:
                aggregate.mark_up()
            return Decided(resource_id=host.id)

        await self._run(f"host-up:{host.id}:v{host.version}", None, "compute:host:up", decide)

    async def evacuate(self, emptied: dict[str, str], host_ids: list[str], now: datetime) -> None:
        rows = await self.pool.fetch(
            f"SELECT resource_id, version, tenant_id, view->>'host_id' "  # noqa: S608
            f"FROM {self._documents} WHERE kind = 'i' AND view->>'host_id' = ANY($1::text[]) "
            "AND view->>'status' = ANY($2::text[]) ORDER BY resource_id",
            list(emptied),
            _MOVABLE,
        )
        if not rows:
            return
        health = {
            host_id: compute.Health(*self.health.health(host_id, now)) for host_id in host_ids
        }
        # A refused attempt is tried again after a while under a new command id; a repeat
        # within the window is answered from the first (and leaves no new operation).
        window = int(now.timestamp() // RETRY_EVERY)
        for instance_id, version, tenant_id, from_host in rows:

            async def decide(
                unit: UnitOfWork,
                instance_id: str = instance_id,
                from_host: str = from_host,
            ) -> Decided:
                return await compute.evacuate_instance(
                    unit,
                    instance_id,
                    from_host,
                    reason=emptied[from_host],
                    host_ids=host_ids,
                    health=health,
                )

            await self._run(
                f"evacuate:{instance_id}:{from_host}:v{version}:{window}",
                tenant_id,
                "compute:instance:evacuate",
                decide,
            )

    async def _run(
        self,
        command_id: str,
        tenant_id: str | None,
        action: str,
        decide: Callable[[UnitOfWork], Awaitable[Decided]],
    ) -> None:
        context = CommandContext(actor=ACTOR, tenant_id=tenant_id, command_id=command_id)
        try:
            await self.executor.run(context, action, decide)
        except CommandFailed as failed:  # recorded as a failed operation
            log.warning("%s %s: %s", action, command_id, failed.error.detail)
        except DomainError as error:
            log.warning("%s %s: %s", action, command_id, error)


async def run_host_failures(
    failures: HostFailures, stop: asyncio.Event, seconds: float = 1.0
) -> None:
    await failures.health.start()
    await every(seconds, stop, lambda: failures.run_once(clock.now()), "host failures")
