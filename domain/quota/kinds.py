"""The countable resources a quota limits."""

from __future__ import annotations

QUOTA_KINDS: tuple[str, ...] = (
    "instances",
    "vcpus",
    "memory_mb",
    "gpus",
    "disks",
    "disk_gb",
    "snapshots",
    "images",
    "vpcs",
    "subnets",
    "security_groups",
    "enis",
    "eips",
    "nat_gateways",
    "load_balancers",
    "vpn_gateways",
    "projects",
    "sub_accounts",
    "api_keys",
)

DEFAULT_LIMITS: dict[str, int] = {
    "instances": 20,
    "vcpus": 80,
    "memory_mb": 160 * 1024,
    "gpus": 0,
    "disks": 40,
    "disk_gb": 4096,
    "snapshots": 100,
    "images": 20,
    "vpcs": 5,
    "subnets": 20,
    "security_groups": 20,
    "enis": 40,
    "eips": 10,
    "nat_gateways": 5,
    "load_balancers": 5,
    "vpn_gateways": 2,
    "projects": 20,
    "sub_accounts": 50,
    "api_keys": 50,
}
"""Used where an admin set neither a region default nor a tenant override."""

GLOBAL_REGION = "*"
"""Quota scope for resources that belong to no region (sub-accounts, keys, projects)."""

GLOBAL_KINDS: tuple[str, ...] = ("projects", "sub_accounts", "api_keys")
"""The kinds counted in ``GLOBAL_REGION``; every other kind is counted per region."""


def kinds_in(region: str) -> tuple[str, ...]:
    """The kinds a scope counts: the region-less ones in ``*``, the others in a region."""
    if region == GLOBAL_REGION:
        return GLOBAL_KINDS
    return tuple(kind for kind in QUOTA_KINDS if kind not in GLOBAL_KINDS)
