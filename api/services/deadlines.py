"""The timer: a step that misses its deadline ends, with its cause, and lets go of its host.

No instance stays in a transitional state forever: this looks for overdue ones in the
read model, and each aggregate decides again on its own state whether it really is.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from api.services import images, migration
from api.services.executor import CommandExecutor, Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.compute.instance import BUILDING, DEADLINES, Instance
from domain.errors import DomainError
from domain.inventory.host import Host
from domain.metadata import Actor, CommandContext
from gateways.waiting import every

log = logging.getLogger(__name__)
_TRANSITIONAL = list(DEADLINES)


async def overdue(executor: CommandExecutor, schema: str, now: datetime) -> list[str]:
    rows = await executor.repository.store.pool.fetch(
        f"SELECT resource_id FROM {schema}.resource_documents "  # noqa: S608 - checked schema
        "WHERE kind = 'i' AND view->>'status' = ANY($1::text[]) "
        "AND (view->>'deadline')::timestamptz < $2",
        _TRANSITIONAL,
        now,
    )
    return [row[0] for row in rows]


async def expire(executor: CommandExecutor, instance_id: str, now: datetime) -> bool:
    """Time out one instance's step if it is still overdue; True if it was."""
    expired = False

    async def decide(unit: UnitOfWork) -> Decided:
        nonlocal expired
        instance = await unit.get(instance_id, Instance)
        was_building = instance.status == BUILDING
        move = instance.migration
        expired = instance.time_out(now)
        if expired and was_building and instance.host_id is not None:
            host = await unit.get(instance.host_id, Host)
            host.release(instance.id, "build timed out")
        if expired and move is not None:
            await migration.release_target(unit, instance, move, "migration timed out")
        return Decided(resource_id=instance_id)

    instance = await executor.repository.get(instance_id, Instance)
    context = CommandContext(
        actor=Actor.system("deadlines"),
        tenant_id=instance.tenant_id,
        command_id=f"timeout:{instance_id}:{instance.deadline}",
    )
    try:
        await executor.run(context, "compute:instance:timeout", decide)
    except DomainError as error:
        log.warning("timing out %s: %s", instance_id, error)
    return expired


async def run_deadlines(
    executor: CommandExecutor, schema: str, stop: asyncio.Event, seconds: float = 1.0
) -> None:
    async def round_() -> None:
        now = clock.now()
        for instance_id in await overdue(executor, schema, now):
            await expire(executor, instance_id, now)
        await images.expire_overdue_images(executor, schema)

    await every(seconds, stop, round_, "deadlines")
