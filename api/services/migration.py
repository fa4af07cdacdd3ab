"""Migration, an operator's action: claim the target, let the source move it, release one side.

The start is one append: the instance's ``MigrationStarted``, the target host's claim (made
by the same placement and claim as an evacuation) and its server group's membership. The
target prepares the disk, then the source host carries out the move and reports; a success
releases the source's claim, a failure or a missed deadline releases the target's and leaves
the instance on its source.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import msgspec

from api.services import compute
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain.compute.instance import ERROR, RUNNING, STOPPED, Instance
from domain.compute.server_group import ServerGroup
from domain.errors import InvalidState
from domain.ids import new_id
from domain.inventory.host import Host
from gateways.bus.hostwire import Action, HostOutcome, PowerState


async def migrate_instance(
    unit: UnitOfWork,
    instance_id: str,
    *,
    live: bool,
    host_id: str | None,
    host_ids: Sequence[str],
    health: Mapping[str, compute.Health],
    among: Collection[str] | None = None,
) -> Decided:
    """Start moving an instance to ``host_id`` (checked by the filters) or the scheduler's pick
    (from ``among`` when given)."""
    instance = await unit.get(instance_id, Instance, checked=True)
    wanted = (RUNNING,) if live else (RUNNING, STOPPED)
    if instance.status not in wanted or instance.host_id is None:
        raise InvalidState(
            f"instance is {instance.status}; a {'live' if live else 'cold'} migration needs "
            f"it {' or '.join(wanted)} on a host",
            instance_id=instance.id,
            status=instance.status,
        )
    if live and instance.gpu_count:
        raise InvalidState(
            "an instance with passthrough GPUs cannot migrate live: migrate it cold",
            instance_id=instance.id,
        )
    source = instance.host_id
    if host_id == source:
        raise InvalidState("the instance already runs on that host", instance_id=instance.id)
    decision = await compute.move_claim(
        unit, instance, source, host_ids=host_ids, health=health, only=host_id, among=among
    )
    assert decision.host_id is not None
    instance.migrate(decision.host_id, new_id("stp"), msgspec.to_builtins(decision), live=live)
    return Decided(
        resource_id=instance.id, body={"from_host_id": source, "to_host_id": decision.host_id}
    )


async def migration_reported(unit: UnitOfWork, instance: Instance, outcome: HostOutcome) -> None:
    """A migration step's outcome: the target prepared (the source moves next), the source
    moved it (release the source's claim), or either failed (release the target's)."""
    move = instance.migration
    if move is None:
        return
    if outcome.action == Action.PREPARE_MIGRATION:
        if outcome.ok:
            instance.migration_prepared(outcome.step_id, new_id("stp"))
            return
        # The source was not touched yet: the guest is as it was there.
        cause = f"the target could not prepare: {outcome.error}"
        if instance.fail_migration(outcome.step_id, cause, move["resume"]):
            await release_target(unit, instance, move, f"migration failed: {cause}")
        return
    if outcome.ok:
        if instance.complete_migration(outcome.step_id):
            source = await unit.get(move["from_host_id"], Host)
            source.release(instance.id, f"migrated to {move['to_host_id']}")
            if not move["live"] and move["resume"] == RUNNING:
                instance.start(new_id("stp"))  # the start of stop-move-start, on the target
        return
    status = {PowerState.RUNNING: RUNNING, PowerState.STOPPED: STOPPED}.get(outcome.state, ERROR)
    cause = outcome.error or f"the host reports the guest {outcome.state}"
    if instance.fail_migration(outcome.step_id, cause, status):
        await release_target(unit, instance, move, f"migration failed: {cause}")
        if move["resume"] == RUNNING and status == STOPPED:
            instance.start(new_id("stp"))  # a cold move stopped it, then failed: start it again


async def settle_migration(
    unit: UnitOfWork, instance: Instance, host_id: str, observed: str
) -> bool:
    """A migration that ended unseen (its deadline passed) is settled where a host found the
    guest: on the target, the target is claimed again and the source let go; on the source,
    its claim was kept. False when the report settles nothing."""
    move = instance.unsettled
    if move is None or not instance.settle_migration(host_id, observed):
        return False
    if host_id == move["to_host_id"]:
        await compute.claim_again(unit, instance)
        source = await unit.get(move["from_host_id"], Host)
        source.release(instance.id, f"migration settled on {host_id}")
        if instance.server_group_id is not None:
            group = await unit.find(instance.server_group_id, ServerGroup)
            if group is not None:
                group.rejoin(instance.id, host_id)
    return True


async def release_target(
    unit: UnitOfWork, instance: Instance, move: Mapping[str, object], reason: str
) -> None:
    """Let go of what a migration held on its target; the group member is back on the source."""
    target = await unit.get(str(move["to_host_id"]), Host)
    target.release(instance.id, reason)
    if instance.server_group_id is not None:
        group = await unit.find(instance.server_group_id, ServerGroup)
        if group is not None:
            group.rejoin(instance.id, str(move["from_host_id"]))
