"""The decision record: what the scheduler was asked, what it saw, how it scored, what it chose.

It is a plain struct so that the placement event can carry it whole, and an auditor can
see why a host was chosen (or why none was) without re-running the scheduler.
"""

from __future__ import annotations

import msgspec

from domain.compute.scheduler.request import PlacementRequest
from domain.compute.scheduler.settings import Multipliers
from domain.compute.scheduler.view import Resources, ServerGroup


class Rejection(msgspec.Struct, frozen=True):
    filter: str
    count: int
    host_ids: tuple[str, ...]
    """In id order, the first ``SchedulerSettings.recorded_rejections`` of them."""


class HostScore(msgspec.Struct, frozen=True):
    host_id: str
    total: float
    weights: dict[str, float]
    """Weigher name to its normalised score in [0, 1], before the multiplier."""


class PreemptionPlan(msgspec.Struct, frozen=True, kw_only=True):
    """Preemptible instances on one host whose removal makes room for the request."""

    host_id: str
    victims: tuple[str, ...]
    freed: Resources
    freed_gpus: tuple[str, ...]
    exhaustive: bool = True
    """False when the search ran out of budget and the plan may not be the smallest."""


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    request: PlacementRequest
    server_group: ServerGroup | None
    """The request's server group as the scheduler saw it."""
    multipliers: Multipliers
    considered: int
    candidates: int
    """Hosts that passed every filter."""
    rejections: tuple[Rejection, ...]
    """One per filter that rejected any host, in filter order."""
    scores: tuple[HostScore, ...]
    """Best first, ties broken by host id; the first is the chosen host."""
    host_id: str | None
    gpu_addresses: tuple[str, ...] = ()
    """The free devices assigned to the instance on the chosen host."""
    reason: str | None = None
    """Why no host was chosen."""
    preemption: PreemptionPlan | None = None
    """Set when no host was chosen for a regular instance and preemption would make room."""

    @property
    def placed(self) -> bool:
        return self.host_id is not None
