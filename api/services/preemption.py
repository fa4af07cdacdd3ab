"""Carrying out the scheduler's preemption plans, in the append of the create they serve.

Each victim stops (a step to its host, through the dispatcher like any stop), its host
claim is released and its tenant gets an operation: all recorded as that tenant's, by the
system actor ``scheduler``, so the victim's owner is told through its own event stream and
audit log and the preempting tenant learns nothing of whose instances made room. The host's
version check makes racing creates safe as for any claim.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import msgspec
from msgspec.structs import replace

from api.services.unit_of_work import UnitOfWork
from domain.compute.instance import PREEMPTABLE, Instance
from domain.compute.preemption import Preemption
from domain.compute.scheduler import Decision, HostView, PreemptionPlan
from domain.errors import NotFound
from domain.ids import new_id
from domain.inventory.host import Host
from domain.metadata import Actor, CommandContext
from domain.operations.operation import SUCCEEDED, Operation

ACTOR = Actor.system("scheduler")
ACTION = "compute:instance:preempt"
REASON = "preempted: its host's room went to a regular instance"


def sparing(views: Sequence[HostView], spared: Collection[str]) -> list[HostView]:
    """The views with the ``spared`` instances counted as regular ones (never victims)."""
    return [
        replace(
            view,
            instances=tuple(
                replace(i, preemptible=False) if i.id in spared else i for i in view.instances
            ),
        )
        if any(i.id in spared for i in view.instances)
        else view
        for view in views
    ]


async def unfit_victims(unit: UnitOfWork, decisions: Iterable[Decision]) -> set[str]:
    """Victims the plans name that cannot be preempted now (mid-migration, being deleted)."""
    unfit: set[str] = set()
    for decision in decisions:
        if decision.host_id is not None or decision.preemption is None:
            continue
        for victim_id in decision.preemption.victims:
            victim = await unit.find(victim_id, Instance)
            if victim is None or not victim.preemptible or victim.status not in PREEMPTABLE:
                unfit.add(victim_id)
            elif victim.host_id != decision.preemption.host_id:
                unfit.add(victim_id)
    return unfit


async def carry_out(
    unit: UnitOfWork, plan: PreemptionPlan, instance_id: str, tenant_id: str
) -> dict[str, Any]:
    """Preempt the plan's victims for ``instance_id``; the plan as its decision records it.

    The record counts the victims; the platform's ``Preemption`` record names them.
    """
    record_id = new_id("pmt")
    host = await unit.get(plan.host_id, Host)
    victims: list[dict[str, str]] = []
    for victim_id in plan.victims:
        victim = await unit.get(victim_id, Instance)
        if not victim.preemptible or victim.host_id != host.id:
            raise NotFound(f"{victim_id} is not preemptible on {host.id}", resource_id=victim_id)
        told = CommandContext(actor=ACTOR, tenant_id=victim.tenant_id, causation_id=record_id)
        with unit.acting_as(told):
            victim.preempt(record_id, REASON, new_id("stp"))
            host.release(victim.id, "preempted")
            unit.add(
                Operation(
                    action=ACTION,
                    resource_id=victim.id,
                    tenant_id=victim.tenant_id,
                    actor_id=ACTOR.id,
                    request_id=None,
                    source=None,
                    status=SUCCEEDED,
                )
            )
        victims.append({"instance_id": victim.id, "tenant_id": victim.tenant_id})
    with unit.acting_as(CommandContext(actor=ACTOR)):
        unit.add(
            Preemption._create(
                Preemption.Created,
                id=record_id,
                instance_id=instance_id,
                tenant_id=tenant_id,
                host_id=host.id,
                victims=victims,
                plan=msgspec.to_builtins(plan),
                reason=REASON,
            )
        )
    return {
        "preemption_id": record_id,
        "host_id": plan.host_id,
        "victim_count": len(plan.victims),
        "freed": msgspec.to_builtins(plan.freed),
        "freed_gpus": list(plan.freed_gpus),
        "exhaustive": plan.exhaustive,
    }


def gpus_of(hosts: Iterable[HostView], host_id: str, instance_id: str) -> tuple[str, ...]:
    """The devices the batch gave ``instance_id`` on ``host_id`` once victims were gone."""
    for view in hosts:
        if view.id == host_id:
            for placed in view.instances:
                if placed.id == instance_id:
                    return tuple(gpu.address for gpu in placed.gpus)
    return ()
