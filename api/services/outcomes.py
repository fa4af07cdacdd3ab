"""What a host's outcome means for its instance: the only way a step ends."""

from __future__ import annotations

import logging

from api.services import images, migration
from api.services.executor import CommandExecutor, Decided
from api.services.unit_of_work import UnitOfWork
from domain.compute.instance import BUILDING, ERROR, REINSTALLING, RUNNING, Instance
from domain.errors import DomainError, NotFound
from domain.inventory.host import Host
from domain.metadata import Actor, ActorKind, CommandContext
from gateways.bus.hostwire import IMAGE_ACTIONS, Action, HostOutcome
from gateways.eventstore.records import ConcurrencyConflict

log = logging.getLogger(__name__)
_REACHED = {
    Action.ENSURE_RUNNING: "running",
    Action.REBOOT: "running",
    Action.ENSURE_STOPPED: "stopped",
    Action.SET_PASSWORD: "running",
    Action.RESIZE: "running",
}


async def apply_outcome(executor: CommandExecutor, outcome: HostOutcome) -> None:
    """Append what the outcome means; a repeat (same step) is answered from the first."""
    if outcome.action in IMAGE_ACTIONS:
        await images.image_reported(executor, outcome)
        return

    async def decide(unit: UnitOfWork) -> Decided:
        try:
            instance = await unit.get(outcome.instance_id, Instance)
        except NotFound:
            return Decided(resource_id=outcome.instance_id)
        if outcome.action in (Action.MIGRATE, Action.PREPARE_MIGRATION):
            await migration.migration_reported(unit, instance, outcome)
            _console(instance, outcome)
            return Decided(resource_id=instance.id)
        was_building = instance.status == BUILDING
        error = outcome.error if not outcome.ok else None
        expected = _REACHED.get(outcome.action, "stopped")
        if outcome.action == Action.REINSTALL and instance.status == REINSTALLING:
            expected = instance.resume or "stopped"
        if (
            error is None
            and outcome.action in (Action.ENSURE_RUNNING, Action.REINSTALL)
            and outcome.state != expected
        ):
            error = f"the host reports the guest {outcome.state}"
        if instance.host_reported(outcome.step_id, expected, error):
            if was_building and instance.status == ERROR and instance.host_id is not None:
                host = await unit.get(instance.host_id, Host)
                host.release(instance.id, f"build failed: {error}")
            _console(instance, outcome)
        elif outcome.ok:
            _console(instance, outcome)  # no step of its own (a migration's confirmation)
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
        # An outcome touches its instance (and, on a failed build, its host), never the
        # tenant's quota ledger: it need not queue behind the tenant's other commands.
        await executor.run(context, "compute:instance:outcome", decide, tenant_queue=False)
    except ConcurrencyConflict:
        raise  # not decided at all: the ingester leaves it unacknowledged, to come again
    except DomainError as error:  # recorded as a failed operation; nothing to retry
        log.warning("outcome %s refused: %s", outcome.step_id, error)


def _console(instance: Instance, outcome: HostOutcome) -> None:
    """A running guest's VNC endpoint, as its host reported it with the outcome."""
    if instance.status == RUNNING and outcome.console is not None:
        if outcome.host_id == instance.host_id:
            instance.report_console(outcome.host_id, outcome.console.host, outcome.console.port)


async def _tenant_of(executor: CommandExecutor, instance_id: str) -> str | None:
    try:
        return (await executor.repository.get(instance_id, Instance)).tenant_id
    except NotFound:
        return None
