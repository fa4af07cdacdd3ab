"""Weighers: each one scores the candidates on one preference; higher is better.

Each weigher's raw scores are normalised to [0, 1] over the candidates (best is 1, worst
is 0) and multiplied by its multiplier, so no weigher wins by the size of its units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from domain.compute.scheduler.context import Context
from domain.compute.scheduler.request import Strategy
from domain.compute.scheduler.settings import Multipliers
from domain.compute.scheduler.view import GroupPolicy, HostView

HostWeight = Callable[[HostView], float | None]
"""A raw score, or None when the host has nothing to say (no heartbeat yet): it scores 0."""


class Weigher(NamedTuple):
    name: str
    """Also the name of its field in ``Multipliers``."""
    prepare: Callable[[Context], HostWeight | None]


def _cpu_load(ctx: Context) -> HostWeight | None:
    def weight(host: HostView) -> float | None:
        # A garbled heartbeat (NaN, infinity) would poison min-max for every host.
        if host.load is None or not math.isfinite(host.load.cpu_load_per_core):
            return None
        return -host.load.cpu_load_per_core

    return weight


def _memory_available(ctx: Context) -> HostWeight | None:
    def weight(host: HostView) -> float | None:
        if host.load is None or host.capacity.memory_mb <= 0:
            return None
        return host.load.memory_available_mb / host.capacity.memory_mb

    return weight


def _fit(ctx: Context) -> HostWeight | None:
    """Spread prefers the host left emptiest by the placement, pack the one left fullest."""
    vcpus, memory_mb = ctx.request.vcpus, ctx.request.memory_mb
    sign = 1.0 if ctx.request.strategy == Strategy.SPREAD else -1.0

    def weight(host: HostView) -> float:
        # Only candidates are weighed, and a candidate's limits are at least the request.
        cpu_limit = host.capacity.vcpus * host.cpu_overcommit
        memory_limit = host.capacity.memory_mb * host.memory_overcommit
        free_cpu = (cpu_limit - host.used.vcpus - vcpus) / cpu_limit
        free_memory = (memory_limit - host.used.memory_mb - memory_mb) / memory_limit
        return sign * (free_cpu + free_memory)

    return weight


def _soft_affinity(ctx: Context) -> HostWeight | None:
    if ctx.group is None or ctx.group.policy != GroupPolicy.SOFT_AFFINITY:
        return None
    members_on = ctx.members_on
    return lambda host: float(members_on.get(host.id, 0))


def _soft_anti_affinity(ctx: Context) -> HostWeight | None:
    if ctx.group is None or ctx.group.policy != GroupPolicy.SOFT_ANTI_AFFINITY:
        return None
    members_on = ctx.members_on
    return lambda host: -float(members_on.get(host.id, 0))


CPU_LOAD = Weigher("cpu_load", _cpu_load)
MEMORY_AVAILABLE = Weigher("memory_available", _memory_available)
FIT = Weigher("fit", _fit)
SOFT_AFFINITY = Weigher("soft_affinity", _soft_affinity)
SOFT_ANTI_AFFINITY = Weigher("soft_anti_affinity", _soft_anti_affinity)

WEIGHERS: tuple[Weigher, ...] = (CPU_LOAD, MEMORY_AVAILABLE, FIT, SOFT_AFFINITY, SOFT_ANTI_AFFINITY)


def normalise(raw: Sequence[float | None]) -> list[float]:
    """Min-max scale to [0, 1]; an unknown score is 0, level with the lowest known one."""
    known = [value for value in raw if value is not None]
    if not known:
        return [0.0] * len(raw)
    low, high = min(known), max(known)
    if high == low:
        top = 1.0 if len(known) < len(raw) else 0.0
        return [0.0 if value is None else top for value in raw]
    span = high - low
    return [0.0 if value is None else (value - low) / span for value in raw]


class Weighing(NamedTuple):
    names: tuple[str, ...]
    columns: tuple[list[float], ...]
    """Per weigher, each candidate's normalised score, in candidate order."""
    totals: list[float]


def weigh(ctx: Context, hosts: Sequence[HostView], multipliers: Multipliers) -> Weighing:
    """Score every candidate on every weigher that applies, and sum with the multipliers."""
    names: list[str] = []
    columns: list[list[float]] = []
    totals = [0.0] * len(hosts)
    for weigher in WEIGHERS:
        multiplier = float(getattr(multipliers, weigher.name))
        weight = weigher.prepare(ctx)
        if weight is None or multiplier == 0.0:
            continue
        column = normalise([weight(host) for host in hosts])
        names.append(weigher.name)
        columns.append(column)
        totals = [total + multiplier * score for total, score in zip(totals, column, strict=True)]
    return Weighing(tuple(names), tuple(columns), totals)
