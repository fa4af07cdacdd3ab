"""Placement: filter the hosts, weigh the candidates, choose one, and record why.

``place`` decides for one instance; ``place_batch`` places several one after another on a
working copy of the view, so a batch respects capacity and anti-affinity among its own
members. Neither touches an aggregate: the caller turns each decision into a claim.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import msgspec
from msgspec.structs import replace

from domain.compute.scheduler.claims import assign_gpus, carried_out, joined
from domain.compute.scheduler.context import Context, context_for
from domain.compute.scheduler.decision import Decision, HostScore, PreemptionPlan, Rejection
from domain.compute.scheduler.filters import FILTERS, RESOURCE_FILTERS
from domain.compute.scheduler.preemption import plan_preemption
from domain.compute.scheduler.request import PlacementRequest
from domain.compute.scheduler.settings import SchedulerSettings
from domain.compute.scheduler.view import HostView, ServerGroup
from domain.compute.scheduler.weighers import weigh
from domain.errors import ValidationFailed

NO_GROUPS: Mapping[str, ServerGroup] = MappingProxyType({})
DEFAULT_SETTINGS = SchedulerSettings()
SUBSET_TOLERANCE = 0.25
"""How far below the best total a host may score and still share the choice."""


def place(
    request: PlacementRequest,
    hosts: Sequence[HostView],
    groups: Mapping[str, ServerGroup] = NO_GROUPS,
    settings: SchedulerSettings = DEFAULT_SETTINGS,
) -> Decision:
    """Choose a host for ``request`` among ``hosts``, or say why none will do."""
    ctx = context_for(request, groups)
    rejected: dict[str, list[HostView]] = {}
    tests: list[tuple[Callable[[HostView], bool], Callable[[HostView], None]]] = []
    for flt in FILTERS:
        test = flt.prepare(ctx)
        if test is not None:
            tests.append((test, rejected.setdefault(flt.name, []).append))
    candidates: list[HostView] = []
    keep = candidates.append
    for host in hosts:
        for test, reject in tests:
            if not test(host):
                reject(host)
                break
        else:
            keep(host)
    rejections = _rejections(rejected, settings.recorded_rejections)
    if not candidates:
        return _nowhere(ctx, len(hosts), rejected, rejections, settings)
    weighing = weigh(ctx, candidates, settings.multipliers)
    totals = weighing.totals
    limit = settings.recorded_scores
    if limit is not None:
        limit = max(limit, settings.subset_size)
    order = _best_first(candidates, totals, limit)
    best = totals[order[0]]
    # Only near-equals share the choice: a soft policy's weight is never traded away.
    near = [i for i in order[: settings.subset_size] if totals[i] >= best - SUBSET_TOLERANCE]
    chosen = candidates[near[_pick(request.instance_id, len(near))]]
    return Decision(
        request=request,
        server_group=ctx.group,
        multipliers=settings.multipliers,
        considered=len(hosts),
        candidates=len(candidates),
        rejections=rejections,
        scores=tuple(
            HostScore(
                candidates[i].id,
                totals[i],
                {
                    name: column[i]
                    for name, column in zip(weighing.names, weighing.columns, strict=True)
                },
            )
            for i in order
        ),
        host_id=chosen.id,
        gpu_addresses=assign_gpus(chosen, request),
    )


def _pick(instance_id: str, among: int) -> int:
    """An index below ``among`` that depends on the instance id alone."""
    if among <= 1:
        return 0
    digest = hashlib.blake2b(instance_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % among


def _best_first(hosts: Sequence[HostView], totals: list[float], limit: int | None) -> list[int]:
    """Candidate indexes by total, highest first, ties by host id; the first ``limit``."""
    if limit is None:
        return sorted(range(len(hosts)), key=lambda i: (-totals[i], hosts[i].id))
    # Find the threshold on the bare floats first (fast), then order only those above it.
    floor = heapq.nlargest(max(limit, 1), totals)[-1]
    leaders = [i for i, total in enumerate(totals) if total >= floor]
    leaders.sort(key=lambda i: (-totals[i], hosts[i].id))
    return leaders[: max(limit, 1)]


def _rejections(rejected: Mapping[str, list[HostView]], limit: int | None) -> tuple[Rejection, ...]:
    records = []
    for name, hosts in rejected.items():
        if not hosts:
            continue
        ids = (host.id for host in hosts)
        listed = (
            sorted(ids) if limit is None or len(hosts) <= limit else heapq.nsmallest(limit, ids)
        )
        records.append(Rejection(name, len(hosts), tuple(listed)))
    return tuple(records)


def _nowhere(
    ctx: Context,
    considered: int,
    rejected: Mapping[str, list[HostView]],
    rejections: tuple[Rejection, ...],
    settings: SchedulerSettings,
) -> Decision:
    request = ctx.request
    refusals = {flt.name: flt.refusal for flt in FILTERS}
    reason = f"no host can take instance {request.instance_id}: " + (
        "; ".join(
            f"{r.count} host{'' if r.count == 1 else 's'} {refusals[r.filter]} ({r.filter})"
            for r in rejections
        )
        or "the scheduler's view holds no hosts"
    )
    plan: PreemptionPlan | None = None
    if not request.preemptible:
        fixable = [host for name in RESOURCE_FILTERS for host in rejected.get(name, ())]
        plan = plan_preemption(request, fixable, settings.preemption_budget)
    if plan is not None:
        reason += (
            f"; preempting {len(plan.victims)} instance{'' if len(plan.victims) == 1 else 's'}"
            f" on {plan.host_id} makes room"
        )
    return Decision(
        request=request,
        server_group=ctx.group,
        multipliers=settings.multipliers,
        considered=considered,
        candidates=0,
        rejections=rejections,
        scores=(),
        host_id=None,
        reason=reason,
        preemption=plan,
    )


class BatchPlacement(msgspec.Struct, frozen=True):
    decisions: tuple[Decision, ...]
    hosts: tuple[HostView, ...]
    """The view once every decision is carried out (claims made, victims preempted)."""
    groups: dict[str, ServerGroup]


def place_batch(
    request: PlacementRequest,
    instance_ids: Sequence[str],
    hosts: Sequence[HostView],
    groups: Mapping[str, ServerGroup] = NO_GROUPS,
    settings: SchedulerSettings = DEFAULT_SETTINGS,
) -> BatchPlacement:
    """Place one instance per id, each seeing the claims (and preemptions) of those before.

    An instance that fits nowhere gets a decision without a host and the batch goes on;
    whether a partial batch stands is the caller's rule.
    """
    if len(set(instance_ids)) != len(instance_ids):
        raise ValidationFailed("a batch names an instance twice", field="instance_ids")
    working, where, group_view = (
        list(hosts),
        {host.id: i for i, host in enumerate(hosts)},
        dict(groups),
    )
    decisions = []
    for instance_id in instance_ids:
        decision = place(replace(request, instance_id=instance_id), working, group_view, settings)
        decisions.append(decision)
        target = decision.host_id
        if target is None and decision.preemption is not None:
            target = decision.preemption.host_id
        if target is None:
            continue
        working[where[target]] = carried_out(working[where[target]], decision)
        if request.server_group_id is not None:
            group = group_view[request.server_group_id]
            group_view[group.id] = joined(group, instance_id, target)
    return BatchPlacement(tuple(decisions), tuple(working), group_view)
