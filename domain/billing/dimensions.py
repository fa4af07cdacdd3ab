"""What is metered: product dimensions, and which states of a resource bill which of them.

Prices are per unit-hour of a dimension. Product policy: a running guest bills its vCPUs,
memory and disk; a stopped or recycled one keeps its disk (and bills it), not its vCPUs;
a guest that never came up (pending, building, failed) bills nothing.
"""

from __future__ import annotations

from decimal import Decimal

from domain.errors import ValidationFailed
from domain.ids import is_id

VCPU = "vcpu"
MEMORY_GB = "memory_gb"
DISK_GB = "disk_gb"
SNAPSHOT_GB = "snapshot_gb"
GPU = "gpu"
EXTERNAL_IP = "external_ip"
BANDWIDTH_MBPS = "bandwidth_mbps"
LOAD_BALANCER = "load_balancer"
NAT_GATEWAY = "nat_gateway"
VPN = "vpn"
FLAVOR = "flavor"
"""``flavor:<flavor id>``: one running instance of that flavor, priced instead of its vCPUs
and memory where a book prices the flavor (an admin's choice per flavor)."""

SIMPLE = frozenset(
    {VCPU, MEMORY_GB, GPU, EXTERNAL_IP, BANDWIDTH_MBPS, LOAD_BALANCER, NAT_GATEWAY, VPN}
)
PER_CLASS = frozenset({DISK_GB, SNAPSHOT_GB})
"""Dimensions priced per storage class: ``disk_gb:ssd``."""
STANDARD_CLASS = "standard"

SUBSCRIPTION = "subscription"
"""The dimension of prepaid purchases' lines (``subscription:monthly``); never priced."""

UNITS = {
    SUBSCRIPTION: "terms",
    VCPU: "vCPU-hours",
    MEMORY_GB: "GB-hours",
    DISK_GB: "GB-hours",
    SNAPSHOT_GB: "GB-hours",
    GPU: "GPU-hours",
    EXTERNAL_IP: "IP-hours",
    BANDWIDTH_MBPS: "Mbps-hours",
    LOAD_BALANCER: "hours",
    NAT_GATEWAY: "hours",
    VPN: "hours",
}
SERVICES = {
    SUBSCRIPTION: ("Elastic Compute (prepaid)", "Compute"),
    VCPU: ("Elastic Compute", "Compute"),
    MEMORY_GB: ("Elastic Compute", "Compute"),
    GPU: ("Elastic Compute", "Compute"),
    DISK_GB: ("EVS Disks", "Storage"),
    SNAPSHOT_GB: ("EVS Snapshots", "Storage"),
    EXTERNAL_IP: ("External IP", "Networking"),
    BANDWIDTH_MBPS: ("External IP", "Networking"),
    LOAD_BALANCER: ("Load Balancing", "Networking"),
    NAT_GATEWAY: ("NAT Gateway", "Networking"),
    VPN: ("IPsec VPN", "Networking"),
}
"""FOCUS ServiceName and ServiceCategory of each dimension family."""

_RUNS = frozenset(
    {"running", "rebooting", "stopping", "migrating", "resetting_password", "resizing"}
)
_KEEPS_DISK = frozenset({"stopped", "starting", "recycled", "reinstalling"})


FLAVOR_PRICED = frozenset({VCPU, MEMORY_GB})
"""What a flavor's own price replaces."""


def family(dimension: str) -> str:
    return dimension.split(":", 1)[0]


def check_dimension(dimension: str) -> str:
    name, _, qualifier = dimension.partition(":")
    if name in SIMPLE and not qualifier:
        return dimension
    if name in PER_CLASS and qualifier.isidentifier():
        return dimension
    if name == FLAVOR and is_id(qualifier, "flv"):
        return dimension
    raise ValidationFailed(
        f"{dimension!r} is not a priced dimension; use one of "
        f"{', '.join(sorted(SIMPLE | {d + ':<class>' for d in PER_CLASS}))}, flavor:<flv-id>",
        field="prices",
    )


def instance_usage(
    status: str,
    vcpus: int,
    memory_mb: int,
    disk_gb: int,
    gpus: int = 0,
    flavor_id: str | None = None,
) -> dict[str, Decimal]:
    """The quantities an instance in ``status`` is billed for, per dimension."""
    usage: dict[str, Decimal] = {}
    if status in _RUNS:
        usage[VCPU] = Decimal(vcpus)
        usage[MEMORY_GB] = Decimal(memory_mb) / 1024
        if flavor_id is not None:
            usage[f"{FLAVOR}:{flavor_id}"] = Decimal(1)
        if gpus:
            usage[GPU] = Decimal(gpus)
    if status in _RUNS or status in _KEEPS_DISK:
        usage[f"{DISK_GB}:{STANDARD_CLASS}"] = Decimal(disk_gb)
    return usage
