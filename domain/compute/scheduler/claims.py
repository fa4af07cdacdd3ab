"""The view after a decision is carried out: claims added, preempted instances gone.

Batch placement uses these to place one instance after another; the aggregates do the
same to the real hosts by appending claims with the expected version.
"""

from __future__ import annotations

from collections.abc import Collection

from msgspec.structs import replace

from domain.compute.scheduler.decision import Decision
from domain.compute.scheduler.request import PlacementRequest
from domain.compute.scheduler.view import HostView, PlacedInstance, Resources, ServerGroup


def assign_gpus(host: HostView, request: PlacementRequest) -> tuple[str, ...]:
    """The free devices of the requested model with the lowest addresses (none if too few)."""
    if request.gpus is None:
        return ()
    model = request.gpus.model
    matching = sorted(gpu.address for gpu in host.free_gpus if model is None or gpu.model == model)
    return tuple(matching[: request.gpus.count]) if len(matching) >= request.gpus.count else ()


def claimed(host: HostView, request: PlacementRequest, gpu_addresses: Collection[str]) -> HostView:
    """``host`` holding the request's resources and devices as one more instance."""
    taken = frozenset(gpu_addresses)
    instance = PlacedInstance(
        id=request.instance_id,
        tenant_id=request.tenant_id,
        vcpus=request.vcpus,
        memory_mb=request.memory_mb,
        disk_gb=request.disk_gb,
        gpus=tuple(gpu for gpu in host.free_gpus if gpu.address in taken),
        server_group_id=request.server_group_id,
        preemptible=request.preemptible,
    )
    used = host.used
    return replace(
        host,
        used=Resources(
            used.vcpus + request.vcpus,
            used.memory_mb + request.memory_mb,
            used.disk_gb + request.disk_gb,
        ),
        free_gpus=tuple(gpu for gpu in host.free_gpus if gpu.address not in taken),
        instances=(*host.instances, instance),
    )


def released(host: HostView, instance_ids: Collection[str]) -> HostView:
    """``host`` without the given instances, their resources and devices free again."""
    gone = [instance for instance in host.instances if instance.id in instance_ids]
    used = host.used
    freed_gpus = [gpu for instance in gone for gpu in instance.gpus]
    return replace(
        host,
        used=Resources(
            used.vcpus - sum(instance.vcpus for instance in gone),
            used.memory_mb - sum(instance.memory_mb for instance in gone),
            used.disk_gb - sum(instance.disk_gb for instance in gone),
        ),
        free_gpus=tuple(sorted((*host.free_gpus, *freed_gpus), key=lambda gpu: gpu.address)),
        instances=tuple(i for i in host.instances if i.id not in instance_ids),
    )


def joined(group: ServerGroup, instance_id: str, host_id: str) -> ServerGroup:
    return replace(group, members={**group.members, instance_id: host_id})


def carried_out(host: HostView, decision: Decision) -> HostView:
    """``host`` once ``decision`` is carried out: victims preempted, then the claim made.

    Hosts the decision does not name are returned unchanged.
    """
    plan = decision.preemption
    if plan is not None and plan.host_id == host.id:
        host = released(host, frozenset(plan.victims))
        return claimed(host, decision.request, assign_gpus(host, decision.request))
    if decision.host_id == host.id:
        return claimed(host, decision.request, decision.gpu_addresses)
    return host
