"""Filters: each one a named rule that a host must pass to be a candidate.

A filter prepares a test of one host for one request, or returns None when it has
nothing to say about this request (no cluster asked for, no GPUs wanted), so that the
per-host loop only runs tests that can reject. The first failing test names the reason
a host was rejected, so the order puts cheap rules first and resources last: a host
rejected by a resource filter has passed every other rule, which is what preemption needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from domain.compute.scheduler.context import Context
from domain.compute.scheduler.view import GroupPolicy, HostView

HostTest = Callable[[HostView], bool]


class Filter(NamedTuple):
    name: str
    prepare: Callable[[Context], HostTest | None]
    refusal: str
    """Why the hosts it rejected could not take the instance, for the decision's reason."""


def _region(ctx: Context) -> HostTest | None:
    wanted = ctx.request.region_id
    return lambda host: host.region_id == wanted


def _cluster(ctx: Context) -> HostTest | None:
    wanted = ctx.request.cluster_id
    return None if wanted is None else (lambda host: host.cluster_id == wanted)


def _architecture(ctx: Context) -> HostTest | None:
    wanted = ctx.request.architecture
    return lambda host: host.architecture == wanted


def _available(ctx: Context) -> HostTest | None:
    return lambda host: host.enabled and host.healthy and not host.maintenance


def _labels(ctx: Context) -> HostTest | None:
    wanted = tuple(ctx.request.required_labels.items())
    if not wanted:
        return None
    return lambda host: all(host.labels.get(key) == value for key, value in wanted)


def _affinity(ctx: Context) -> HostTest | None:
    if ctx.group is None or ctx.group.policy != GroupPolicy.AFFINITY or not ctx.members_on:
        return None
    hosts = ctx.members_on
    return lambda host: host.id in hosts


def _anti_affinity(ctx: Context) -> HostTest | None:
    if ctx.group is None or ctx.group.policy != GroupPolicy.ANTI_AFFINITY:
        return None
    members_on, most = ctx.members_on, ctx.group.max_per_host or 1
    return lambda host: members_on.get(host.id, 0) < most


def _max_per_host(ctx: Context) -> HostTest | None:
    group = ctx.group
    if group is None or group.max_per_host is None or group.policy == GroupPolicy.ANTI_AFFINITY:
        return None
    members_on, most = ctx.members_on, group.max_per_host
    return lambda host: members_on.get(host.id, 0) < most


def _capacity(ctx: Context) -> HostTest | None:
    vcpus, memory_mb, disk_gb = ctx.request.vcpus, ctx.request.memory_mb, ctx.request.disk_gb

    def test(host: HostView) -> bool:
        # Used is an int and capacity x ratio a float: ``used <= cap * ratio`` is the same
        # test as ``used <= floor(cap * ratio)``, which is what ``view.limits`` reports.
        used, capacity = host.used, host.capacity
        return (
            used.vcpus + vcpus <= capacity.vcpus * host.cpu_overcommit
            and used.memory_mb + memory_mb <= capacity.memory_mb * host.memory_overcommit
            and used.disk_gb + disk_gb <= capacity.disk_gb
        )

    return test


def _gpus(ctx: Context) -> HostTest | None:
    wanted = ctx.request.gpus
    if wanted is None:
        return None
    count, model = wanted.count, wanted.model
    if model is None:
        return lambda host: len(host.free_gpus) >= count
    return lambda host: sum(gpu.model == model for gpu in host.free_gpus) >= count


REGION = Filter("region", _region, "in another region")
CLUSTER = Filter("cluster", _cluster, "in another cluster")
ARCHITECTURE = Filter("architecture", _architecture, "of another CPU architecture")
AVAILABLE = Filter("available", _available, "disabled, unhealthy or in maintenance")
LABELS = Filter("labels", _labels, "missing a required label")
SERVER_GROUP_AFFINITY = Filter(
    "server_group_affinity", _affinity, "not the host of the affinity group's members"
)
SERVER_GROUP_ANTI_AFFINITY = Filter(
    "server_group_anti_affinity",
    _anti_affinity,
    "already holding as many members of the anti-affinity group as it allows per host",
)
SERVER_GROUP_MAX_PER_HOST = Filter(
    "server_group_max_per_host", _max_per_host, "holding the server group's maximum per host"
)
CAPACITY = Filter("capacity", _capacity, "short of vCPUs, memory or disk")
GPUS = Filter("gpus", _gpus, "short of free GPUs of the requested model")

FILTERS: tuple[Filter, ...] = (
    REGION,
    CLUSTER,
    ARCHITECTURE,
    AVAILABLE,
    LABELS,
    SERVER_GROUP_AFFINITY,
    SERVER_GROUP_ANTI_AFFINITY,
    SERVER_GROUP_MAX_PER_HOST,
    CAPACITY,
    GPUS,
)
RESOURCE_FILTERS = frozenset({CAPACITY.name, GPUS.name})
"""Rejections that freeing preemptible instances can cure; they run last."""


def rejected_by(ctx: Context, host: HostView) -> str | None:
    """The name of the first filter ``host`` fails for this placement, or None if it passes."""
    for flt in FILTERS:
        test = flt.prepare(ctx)
        if test is not None and not test(host):
            return flt.name
    return None
