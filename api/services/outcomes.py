"""What a host's outcome means for its instance: the only way a step ends."""

from __future__ import annotations

import logging

from api.services.executor import CommandExecutor, Decided
from api.services.unit_of_work import UnitOfWork
from domain.compute.instance import BUILDING, ERROR, Instance
from domain.errors import DomainError, NotFound
from domain.inventory.host import Host
from domain.metadata import Actor, ActorKind, CommandContext
from gateways.bus.hostwire import Action, HostOutcome, PowerState

log = logging.getLogger(__name__)
_REACHED = {
    Action.ENSURE_RUNNING: "running",
    Action.REBOOT: "running",
    Action.ENSURE_STOPPED: "stopped",
}


async def apply_outcome(executor: CommandExecutor, outcome: HostOutcome) -> None:
    """Append what the outcome means; a repeat (same step) is answered from the first."""

    async def decide(unit: UnitOfWork) -> Decided:
        try:
            instance = await unit.get(outcome.instance_id, Instance)
        except NotFound:
            return Decided(resource_id=outcome.instance_id)
        was_building = instance.status == BUILDING
        error = outcome.error if not outcome.ok else None
        if (
            error is None
            and outcome.action == Action.ENSURE_RUNNING
            and (outcome.state != PowerState.RUNNING)
        ):
            error = f"the host reports the guest {outcome.state}"
        if instance.host_reported(outcome.step_id, _REACHED.get(outcome.action, "stopped"), error):
            if was_building and instance.status == ERROR and instance.host_id is not None:
                host = await unit.get(instance.host_id, Host)
                host.release(instance.id, f"build failed: {error}")
        return Decided(resource_id=instance.id)

    tenant_id = await _tenant_of(executor, outcome.instance_id)
    if tenant_id is None:
        return  # not an instance of this platform (a shared NATS carries others' outcomes)
    context = CommandContext(
        actor=Actor(ActorKind.HOST, outcome.host_id),
        command_id=f"outcome:{outcome.step_id}",
        correlation_id=outcome.step_id,
        causation_id=outcome.step_id,
        tenant_id=tenant_id,
    )
    try:
        await executor.run(context, "compute:instance:outcome", decide)
    except DomainError as error:  # recorded as a failed operation; nothing to retry
        log.warning("outcome %s refused: %s", outcome.step_id, error)


async def _tenant_of(executor: CommandExecutor, instance_id: str) -> str | None:
    try:
        return (await executor.repository.get(instance_id, Instance)).tenant_id
    except NotFound:
        return None
