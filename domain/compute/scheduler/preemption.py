"""Preemption: the fewest preemptible instances on one host whose removal makes room.

Asked only for a regular instance that no host can take, and only about hosts that failed
nothing but the resource filters. Quota (the victims' tenants, the requester's) is checked
by the caller; this only answers "which instances, on which host".

Among the plans that free enough, the smallest wins: fewest victims, then fewest vCPUs,
memory, disk and GPUs freed, then the lowest host id and victim ids. The search tries
sets in order of size across all hosts, so the first size that fits is the minimum; a
budget bounds it on hosts with very many small preemptible instances, where it settles
for a greedy plan and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations
from typing import NamedTuple

from domain.compute.scheduler.decision import PreemptionPlan
from domain.compute.scheduler.request import PlacementRequest
from domain.compute.scheduler.view import HostView, PlacedInstance, Resources, limits

Amounts = tuple[int, int, int, int]
"""vCPUs, memory, disk and GPUs of the requested model."""
Rank = tuple[int, int, int, int, int, str, tuple[str, ...]]


class _Host(NamedTuple):
    host: HostView
    need: Amounts
    victims: tuple[PlacedInstance, ...]
    """Its preemptible instances, by id."""
    gives: tuple[Amounts, ...]
    fewest: int
    """No smaller set can cover ``need``, judging each amount on its own."""


def _need(host: HostView, request: PlacementRequest) -> Amounts:
    limit = limits(host)
    gpus = 0
    if request.gpus is not None:
        model = request.gpus.model
        free = sum(model is None or gpu.model == model for gpu in host.free_gpus)
        gpus = max(0, request.gpus.count - free)
    return (
        max(0, host.used.vcpus + request.vcpus - limit.vcpus),
        max(0, host.used.memory_mb + request.memory_mb - limit.memory_mb),
        max(0, host.used.disk_gb + request.disk_gb - limit.disk_gb),
        gpus,
    )


def _gives(instance: PlacedInstance, request: PlacementRequest) -> Amounts:
    model = None if request.gpus is None else request.gpus.model
    gpus = sum(model is None or gpu.model == model for gpu in instance.gpus)
    return (instance.vcpus, instance.memory_mb, instance.disk_gb, gpus)


def _covers(need: Amounts, gives: Iterable[Amounts]) -> bool:
    vcpus = memory_mb = disk_gb = gpus = 0
    for v, m, d, g in gives:
        vcpus, memory_mb, disk_gb, gpus = vcpus + v, memory_mb + m, disk_gb + d, gpus + g
    return vcpus >= need[0] and memory_mb >= need[1] and disk_gb >= need[2] and gpus >= need[3]


def _fewest(need: Amounts, gives: Sequence[Amounts]) -> int:
    fewest = 1
    for d in range(4):
        largest_first = sorted((g[d] for g in gives), reverse=True)
        total, count = 0, 0
        while total < need[d]:
            total, count = total + largest_first[count], count + 1
        fewest = max(fewest, count)
    return fewest


def _prospect(host: HostView, request: PlacementRequest) -> _Host | None:
    victims = tuple(sorted((i for i in host.instances if i.preemptible), key=lambda i: i.id))
    if not victims:
        return None
    need = _need(host, request)
    if need[3] and not any(victim.gpus for victim in victims):
        return None  # the common case for a GPU request: a host without GPUs
    gives = tuple(_gives(victim, request) for victim in victims)
    if not _covers(need, gives):
        return None
    return _Host(host, need, victims, gives, _fewest(need, gives))


def _rank(host: _Host, chosen: Sequence[int]) -> Rank:
    victims = [host.victims[i] for i in chosen]
    return (
        len(victims),
        sum(v.vcpus for v in victims),
        sum(v.memory_mb for v in victims),
        sum(v.disk_gb for v in victims),
        sum(len(v.gpus) for v in victims),
        host.host.id,
        tuple(v.id for v in victims),
    )


def _share(gives: Amounts, need: Sequence[int]) -> float:
    return sum(min(gives[d], need[d]) / need[d] for d in range(4) if need[d] > 0)


def _greedy(host: _Host) -> tuple[int, ...]:
    """Take the instance covering most of what is still missing, then drop the superfluous."""
    need, chosen = list(host.need), []
    left = list(range(len(host.victims)))
    while any(n > 0 for n in need):
        best = max(left, key=lambda i: (_share(host.gives[i], need), -i))
        left.remove(best)
        chosen.append(best)
        need = [n - g for n, g in zip(need, host.gives[best], strict=True)]
    for i in sorted(chosen, key=lambda i: host.gives[i], reverse=True):
        rest = [j for j in chosen if j != i]
        if _covers(host.need, [host.gives[j] for j in rest]):
            chosen = rest
    return tuple(sorted(chosen))


def _plan(host: _Host, chosen: Sequence[int], exhaustive: bool) -> PreemptionPlan:
    victims = [host.victims[i] for i in chosen]
    return PreemptionPlan(
        host_id=host.host.id,
        victims=tuple(v.id for v in victims),
        freed=Resources(
            sum(v.vcpus for v in victims),
            sum(v.memory_mb for v in victims),
            sum(v.disk_gb for v in victims),
        ),
        freed_gpus=tuple(sorted(gpu.address for v in victims for gpu in v.gpus)),
        exhaustive=exhaustive,
    )


def plan_preemption(
    request: PlacementRequest, hosts: Sequence[HostView], budget: int = 100_000
) -> PreemptionPlan | None:
    """The smallest plan over ``hosts`` (which passed every non-resource filter), if any."""
    if request.preemptible:
        return None
    prospects = [p for host in hosts if (p := _prospect(host, request)) is not None]
    if not prospects:
        return None
    tried = 0
    for size in range(1, max(len(p.victims) for p in prospects) + 1):
        best: tuple[Rank, _Host, tuple[int, ...]] | None = None
        for prospect in prospects:
            if not prospect.fewest <= size <= len(prospect.victims):
                continue
            need, gives = prospect.need, prospect.gives
            for chosen in combinations(range(len(gives)), size):
                tried += 1
                if tried > budget:
                    if best is not None:
                        return _plan(best[1], best[2], exhaustive=False)
                    return _greedy_plan(prospects)
                if _covers(need, (gives[i] for i in chosen)):
                    rank = _rank(prospect, chosen)
                    if best is None or rank < best[0]:
                        best = (rank, prospect, chosen)
        if best is not None:
            return _plan(best[1], best[2], exhaustive=True)
    return None  # unreachable: every prospect is covered by all its victims


def _greedy_plan(prospects: Sequence[_Host]) -> PreemptionPlan:
    picks = [(p, _greedy(p)) for p in prospects]
    prospect, chosen = min(picks, key=lambda pick: _rank(pick[0], pick[1]))
    return _plan(prospect, chosen, exhaustive=False)
