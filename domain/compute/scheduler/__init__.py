"""The scheduler: where an instance should run, decided from a view of the fleet, no I/O.

Filters reject hosts that cannot take the instance, weighers rank the rest, and the
decision records all of it. Claiming the chosen host is the caller's job: it appends a
claim to the host (and server group) aggregate with the version the view was built from.
"""

from domain.compute.scheduler.claims import assign_gpus, carried_out, claimed, joined, released
from domain.compute.scheduler.decision import Decision, HostScore, PreemptionPlan, Rejection
from domain.compute.scheduler.filters import FILTERS, Filter
from domain.compute.scheduler.placement import BatchPlacement, place, place_batch
from domain.compute.scheduler.preemption import plan_preemption
from domain.compute.scheduler.request import GpuRequest, PlacementRequest, Strategy
from domain.compute.scheduler.settings import Multipliers, SchedulerSettings
from domain.compute.scheduler.view import (
    GpuDevice,
    GroupPolicy,
    HostHealth,
    HostView,
    LiveLoad,
    PlacedInstance,
    Resources,
    ServerGroup,
    limits,
)
from domain.compute.scheduler.weighers import WEIGHERS, Weigher, normalise

__all__ = [
    "FILTERS",
    "WEIGHERS",
    "BatchPlacement",
    "Decision",
    "Filter",
    "GpuDevice",
    "GpuRequest",
    "GroupPolicy",
    "HostHealth",
    "HostScore",
    "HostView",
    "LiveLoad",
    "Multipliers",
    "PlacedInstance",
    "PlacementRequest",
    "PreemptionPlan",
    "Rejection",
    "Resources",
    "SchedulerSettings",
    "ServerGroup",
    "Strategy",
    "Weigher",
    "assign_gpus",
    "carried_out",
    "claimed",
    "joined",
    "limits",
    "normalise",
    "place",
    "place_batch",
    "plan_preemption",
    "released",
]
