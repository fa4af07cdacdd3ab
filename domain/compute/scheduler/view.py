"""What the scheduler sees of the fleet: hosts with their claims and load, and server groups.

The caller builds this view from projections (capacity, claims) and the heartbeat bucket
(load); the scheduler only reads it.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Resources(msgspec.Struct, frozen=True):
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0


class GpuDevice(msgspec.Struct, frozen=True):
    address: str
    """PCI address, ``0000:3b:00.0``."""
    model: str


class LiveLoad(msgspec.Struct, frozen=True):
    """The last heartbeat's figures."""

    cpu_load_per_core: float
    """The one-minute load average divided by the host's cores."""
    memory_available_mb: int


class HostHealth(msgspec.Struct, frozen=True):
    """Whether a host's heartbeat is within its deadline, and what the beat said."""

    healthy: bool
    load: LiveLoad | None = None


class PlacedInstance(msgspec.Struct, frozen=True, kw_only=True):
    """An instance holding a claim on a host."""

    id: str
    tenant_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    gpus: tuple[GpuDevice, ...] = ()
    server_group_id: str | None = None
    preemptible: bool = False


class HostView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    region_id: str
    cluster_id: str
    architecture: str
    enabled: bool = True
    healthy: bool = True
    """Its heartbeat is within the deadline."""
    maintenance: bool = False
    capacity: Resources
    used: Resources = Resources()
    """Everything claimed on the host, including claims whose instances are still starting."""
    cpu_overcommit: float = 1.0
    memory_overcommit: float = 1.0
    free_gpus: tuple[GpuDevice, ...] = ()
    load: LiveLoad | None = None
    labels: dict[str, str] = {}
    instances: tuple[PlacedInstance, ...] = ()


def limits(host: HostView) -> Resources:
    """What may be claimed on ``host``: physical capacity times the cluster's overcommit."""
    return Resources(
        int(host.capacity.vcpus * host.cpu_overcommit),
        int(host.capacity.memory_mb * host.memory_overcommit),
        host.capacity.disk_gb,
    )


class GroupPolicy(StrEnum):
    AFFINITY = "affinity"
    ANTI_AFFINITY = "anti-affinity"
    SOFT_AFFINITY = "soft-affinity"
    SOFT_ANTI_AFFINITY = "soft-anti-affinity"


class ServerGroup(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    policy: GroupPolicy
    max_per_host: int | None = None
    """For anti-affinity, how many members may share a host (default one); for the other
    policies, a hard cap per host when set."""
    members: dict[str, str] = {}
    """Instance id to the host it is placed on."""
