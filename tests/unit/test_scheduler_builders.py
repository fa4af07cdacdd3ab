"""Builders and Hypothesis strategies shared by the scheduler tests (no tests here)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from domain.compute.scheduler import (
    GpuDevice,
    GpuRequest,
    HostView,
    LiveLoad,
    PlacedInstance,
    PlacementRequest,
    Resources,
    ServerGroup,
    Strategy,
    limits,
)
from domain.compute.scheduler.context import context_for
from domain.compute.scheduler.filters import Filter

REGION, CLUSTER, ARCH = "rgn-1", "cls-1", "x86_64"


def host(
    id: str = "hst-a",
    *,
    vcpus: int = 16,
    memory_mb: int = 65536,
    disk_gb: int = 1000,
    used: tuple[int, int, int] = (0, 0, 0),
    **fields: Any,
) -> HostView:
    fields.setdefault("region_id", REGION)
    fields.setdefault("cluster_id", CLUSTER)
    fields.setdefault("architecture", ARCH)
    return HostView(
        id=id,
        capacity=Resources(vcpus, memory_mb, disk_gb),
        used=Resources(*used),
        **fields,
    )


def ask(instance_id: str = "i-1", **fields: Any) -> PlacementRequest:
    fields.setdefault("tenant_id", "tnt-1")
    fields.setdefault("region_id", REGION)
    fields.setdefault("architecture", ARCH)
    fields.setdefault("vcpus", 2)
    fields.setdefault("memory_mb", 2048)
    fields.setdefault("disk_gb", 20)
    return PlacementRequest(instance_id=instance_id, **fields)


def gpu(n: int, model: str = "A100") -> GpuDevice:
    return GpuDevice(f"0000:{n:02x}:00.0", model)


def instance(id: str, vcpus: int = 2, memory_mb: int = 2048, **fields: Any) -> PlacedInstance:
    fields.setdefault("tenant_id", "tnt-2")
    fields.setdefault("disk_gb", 20)
    return PlacedInstance(id=id, vcpus=vcpus, memory_mb=memory_mb, **fields)


def verdict(
    flt: Filter,
    request: PlacementRequest,
    subject: HostView,
    groups: Mapping[str, ServerGroup] | None = None,
) -> bool | None:
    """Whether ``subject`` passes ``flt``; None when the filter does not apply."""
    test = flt.prepare(context_for(request, groups or {}))
    return None if test is None else test(subject)


def within_limits(view: Sequence[HostView]) -> bool:
    for h in view:
        limit = limits(h)
        if h.used.vcpus > limit.vcpus or h.used.memory_mb > limit.memory_mb:
            return False
        if h.used.disk_gb > limit.disk_gb:
            return False
    return True


OVERCOMMITS = st.sampled_from([1.0, 1.25, 1.5, 2.0, 3.0, 4.0])


@st.composite
def fleets(draw: st.DrawFn, min_hosts: int = 1, max_hosts: int = 8) -> list[HostView]:
    """Small hosts, partly used, some disabled or in another cluster, some with GPUs."""
    count = draw(st.integers(min_hosts, max_hosts))
    view = []
    for n in range(count):
        vcpus = draw(st.integers(1, 16))
        memory_mb = draw(st.integers(512, 32768))
        disk_gb = draw(st.integers(0, 400))
        cpu_oc, memory_oc = draw(OVERCOMMITS), draw(OVERCOMMITS)
        used = (
            draw(st.integers(0, int(vcpus * cpu_oc))),
            draw(st.integers(0, int(memory_mb * memory_oc))),
            draw(st.integers(0, disk_gb)),
        )
        view.append(
            host(
                f"hst-{n:02d}",
                vcpus=vcpus,
                memory_mb=memory_mb,
                disk_gb=disk_gb,
                used=used,
                cpu_overcommit=cpu_oc,
                memory_overcommit=memory_oc,
                enabled=draw(st.booleans()) or draw(st.booleans()),
                cluster_id=draw(st.sampled_from([CLUSTER, CLUSTER, "cls-2"])),
                free_gpus=tuple(
                    gpu(g, draw(st.sampled_from(["A100", "L4"])))
                    for g in range(draw(st.integers(0, 3)))
                ),
                load=draw(
                    st.none() | st.builds(LiveLoad, st.floats(0, 4), st.integers(0, memory_mb))
                ),
            )
        )
    return view


@st.composite
def requests(draw: st.DrawFn, instance_id: str = "i-x") -> PlacementRequest:
    return ask(
        instance_id,
        vcpus=draw(st.integers(1, 8)),
        memory_mb=draw(st.integers(1, 8192)),
        disk_gb=draw(st.integers(0, 100)),
        cluster_id=draw(st.sampled_from([None, CLUSTER])),
        gpus=draw(
            st.sampled_from([None, None, None])
            | st.builds(GpuRequest, st.integers(1, 2), st.sampled_from([None, "L4"]))
        ),
        strategy=draw(st.sampled_from(list(Strategy))),
        preemptible=draw(st.booleans()),
    )
