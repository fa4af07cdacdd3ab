"""The scheduler's tunables, one typed object built where the platform starts."""

from __future__ import annotations

import msgspec


class Multipliers(msgspec.Struct, frozen=True, kw_only=True):
    """How much each weigher counts; each weigher's scores are first normalised to [0, 1].

    The soft server-group weighers outweigh the other three together, so a soft policy is
    honoured whenever some host allows it and the others decide among equals.
    """

    cpu_load: float = 1.0
    memory_available: float = 1.0
    fit: float = 1.0
    soft_affinity: float = 4.0
    soft_anti_affinity: float = 4.0


class SchedulerSettings(msgspec.Struct, frozen=True, kw_only=True):
    multipliers: Multipliers = Multipliers()
    recorded_scores: int | None = 10
    """How many of the best hosts' scores a decision records; None records every candidate."""
    recorded_rejections: int | None = 50
    """How many host ids a decision lists per rejecting filter (counts are always whole)."""
    subset_size: int = 1
    """Choose among this many of the best hosts (by the instance id's hash, so the decision
    still depends only on its input): concurrent creates then seldom race for one host."""
    preemption_budget: int = 100_000
    """Victim sets a preemption search may try before it settles for a greedy plan."""
