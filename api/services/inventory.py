"""Decisions of the admin's inventory and settings commands.

Names that must be unique (a region's, a cluster's within its region, a hostname, …) are
claimed by ``NameClaim`` aggregates in the same append as the resource they name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from api.services.executor import Decided
from api.services.unit_of_work import PreconditionFailed, UnitOfWork
from domain.errors import NotFound, ValidationFailed
from domain.inventory.cluster import Cluster
from domain.inventory.flavor import Flavor
from domain.inventory.host import Host
from domain.inventory.image_pool import ImagePool
from domain.inventory.ip_pool import IpPool
from domain.inventory.name_claim import NameClaim, claim_id
from domain.inventory.region import Region
from domain.settings.global_config import GLOBAL_CONFIG_ID, GlobalConfig

REGIONS = "region"
HOSTNAMES = "host"
FLAVORS = "flavor"

Switchable = TypeVar("Switchable", Region, Cluster, IpPool, ImagePool, Flavor)


def clusters_in(region_id: str) -> str:
    return f"cluster:{region_id}"


def ip_pools_in(region_id: str) -> str:
    return f"ip-pool:{region_id}"


def image_pools_in(region_id: str) -> str:
    return f"image-pool:{region_id}"


async def claim_name(unit: UnitOfWork, scope: str, name: str, owner_id: str) -> None:
    existing = await unit.find(claim_id(scope, name), NameClaim)
    if existing is None:
        unit.add(NameClaim.claim(scope, name, owner_id))
    else:
        existing.take(owner_id)


async def rename(unit: UnitOfWork, scope: str, old: str, new: str, owner_id: str) -> None:
    """Claim ``new`` for ``owner_id`` and give up ``old``, in one append."""
    if claim_id(scope, old) == claim_id(scope, new):
        return
    await claim_name(unit, scope, new, owner_id)
    previous = await unit.find(claim_id(scope, old), NameClaim)
    if previous is not None and previous.owner_id == owner_id:
        previous.release()


async def region_for(unit: UnitOfWork, region_id: str) -> Region:
    region = await unit.find(region_id, Region)
    if region is None:
        raise ValidationFailed(f"{region_id} is not a region", field="region_id")
    return region


async def switch(
    unit: UnitOfWork, resource_id: str, kind: type[Switchable], enabled: bool
) -> Decided:
    """Enable or disable a region, cluster, pool or flavor."""
    resource = await unit.get(resource_id, kind, checked=True)
    if enabled:
        resource.enable()
    else:
        resource.disable()
    return Decided(resource_id=resource.id)


# -- regions ---------------------------------------------------------------------------


async def open_region(
    unit: UnitOfWork,
    name: str,
    display_name: str | None,
    description: str,
    enabled: bool,
    quota_defaults: Mapping[str, int],
) -> Decided:
    region = Region.open(name, display_name, description, enabled, quota_defaults)
    await claim_name(unit, REGIONS, name, region.id)
    unit.add(region)
    return Decided(resource_id=region.id)


async def update_region(
    unit: UnitOfWork,
    region_id: str,
    display_name: str | None,
    description: str | None,
    quota_defaults: Mapping[str, int | None] | None,
) -> Decided:
    region = await unit.get(region_id, Region, checked=True)
    region.describe(display_name, description)
    if quota_defaults is not None:
        region.set_quota_defaults(quota_defaults)
    return Decided(resource_id=region.id)


# -- clusters and hosts ----------------------------------------------------------------


async def form_cluster(
    unit: UnitOfWork,
    region_id: str,
    name: str,
    architecture: str,
    kind: str,
    cpu_overcommit: float,
    memory_overcommit: float,
    enabled: bool,
) -> Decided:
    region = await region_for(unit, region_id)
    cluster = Cluster.form(
        region, name, architecture, kind, cpu_overcommit, memory_overcommit, enabled
    )
    await claim_name(unit, clusters_in(region.id), name, cluster.id)
    unit.add(cluster)
    return Decided(resource_id=cluster.id)


async def update_cluster(
    unit: UnitOfWork,
    cluster_id: str,
    name: str | None,
    cpu_overcommit: float | None,
    memory_overcommit: float | None,
) -> Decided:
    cluster = await unit.get(cluster_id, Cluster, checked=True)
    if name is not None:
        await rename(unit, clusters_in(cluster.region_id), cluster.name, name, cluster.id)
        cluster.rename(name)
    cluster.set_overcommit(cpu_overcommit, memory_overcommit)
    return Decided(resource_id=cluster.id)


async def register_host(
    unit: UnitOfWork,
    cluster_id: str,
    hostname: str,
    capacity: Mapping[str, int],
    labels: Mapping[str, str],
    gpus: Sequence[Mapping[str, str]],
    enabled: bool,
) -> Decided:
    cluster = await unit.find(cluster_id, Cluster)
    if cluster is None:
        raise ValidationFailed(f"{cluster_id} is not a cluster", field="cluster_id")
    host = Host.register(cluster, hostname, capacity, labels, gpus, enabled)
    await claim_name(unit, HOSTNAMES, hostname, host.id)
    unit.add(host)
    return Decided(resource_id=host.id)


async def update_host(
    unit: UnitOfWork,
    host_id: str,
    capacity: Mapping[str, int] | None,
    labels: Mapping[str, str | None] | None,
    gpus: Sequence[Mapping[str, str]] | None,
) -> Decided:
    host = await unit.get(host_id, Host, checked=True)
    if capacity is not None:
        host.change_capacity(capacity)
    if labels is not None:
        host.relabel(labels)
    if gpus is not None:
        host.change_gpus(gpus)
    return Decided(resource_id=host.id)


async def set_host_status(unit: UnitOfWork, host_id: str, status: str) -> Decided:
    host = await unit.get(host_id, Host, checked=True)
    if status == "enabled":
        host.enable()
    elif status == "disabled":
        host.disable()
    else:
        host.enter_maintenance()
    return Decided(resource_id=host.id)


# -- pools -----------------------------------------------------------------------------


async def define_ip_pool(
    unit: UnitOfWork,
    region_id: str,
    name: str,
    cidr: str,
    ranges: Sequence[Mapping[str, str]],
    gateway: str,
    purpose: str,
    ip_version: int | None,
    enabled: bool,
) -> Decided:
    region = await region_for(unit, region_id)
    pool = IpPool.define(region, name, cidr, ranges, gateway, purpose, ip_version, enabled)
    await claim_name(unit, ip_pools_in(region.id), name, pool.id)
    unit.add(pool)
    return Decided(resource_id=pool.id)


async def update_ip_pool(
    unit: UnitOfWork,
    pool_id: str,
    name: str | None,
    ranges: Sequence[Mapping[str, str]] | None,
    gateway: str | None,
) -> Decided:
    pool = await unit.get(pool_id, IpPool, checked=True)
    if name is not None:
        await rename(unit, ip_pools_in(pool.region_id), pool.name, name, pool.id)
        pool.rename(name)
    pool.reconfigure(ranges, gateway)
    return Decided(resource_id=pool.id)


async def define_image_pool(
    unit: UnitOfWork, region_id: str, name: str, backend: str, location: str, enabled: bool
) -> Decided:
    region = await region_for(unit, region_id)
    pool = ImagePool.define(region, name, backend, location, enabled)
    await claim_name(unit, image_pools_in(region.id), name, pool.id)
    unit.add(pool)
    return Decided(resource_id=pool.id)


async def rename_image_pool(unit: UnitOfWork, pool_id: str, name: str | None) -> Decided:
    pool = await unit.get(pool_id, ImagePool, checked=True)
    if name is not None:
        await rename(unit, image_pools_in(pool.region_id), pool.name, name, pool.id)
        pool.rename(name)
    return Decided(resource_id=pool.id)


# -- flavors ---------------------------------------------------------------------------


async def define_flavor(
    unit: UnitOfWork,
    name: str,
    vcpus: int,
    memory_mb: int,
    disk: tuple[int, int],
    gpus: tuple[int, str | None],
    architecture: str,
    public: bool,
    enabled: bool,
) -> Decided:
    """``disk`` is (min GB, max GB); ``gpus`` is (count, model or None for any)."""
    (min_gb, max_gb), (gpu_count, gpu_model) = disk, gpus
    flavor = Flavor.define(
        name, vcpus, memory_mb, min_gb, max_gb, architecture, gpu_count, gpu_model, public, enabled
    )
    await claim_name(unit, FLAVORS, name, flavor.id)
    unit.add(flavor)
    return Decided(resource_id=flavor.id)


async def update_flavor(
    unit: UnitOfWork, flavor_id: str, name: str | None, public: bool | None
) -> Decided:
    flavor = await unit.get(flavor_id, Flavor, checked=True)
    if name is not None:
        await rename(unit, FLAVORS, flavor.name, name, flavor.id)
        flavor.rename(name)
    if public is not None:
        flavor.set_public(public)
    return Decided(resource_id=flavor.id)


# -- global configuration --------------------------------------------------------------


async def global_config(unit: UnitOfWork) -> GlobalConfig:
    """The configuration, established on its first change (its ETag is 0 until then)."""
    try:
        return await unit.get(GLOBAL_CONFIG_ID, GlobalConfig, checked=True)
    except NotFound:
        pass
    if unit.if_match not in (None, 0):
        raise PreconditionFailed(
            f"{GLOBAL_CONFIG_ID} is at version 0, not {unit.if_match}",
            resource_id=GLOBAL_CONFIG_ID,
        )
    config = GlobalConfig.establish()
    unit.add(config)
    return config


async def configure(
    unit: UnitOfWork,
    *,
    recycle_bin: Mapping[str, Any] | None = None,
    billing: Mapping[str, Any] | None = None,
    mail: Mapping[str, Any] | None = None,
    login_policy: Mapping[str, Any] | None = None,
    quota_defaults: Mapping[str, int | None] | None = None,
) -> Decided:
    """Apply the sections given; each section's keys are its domain method's arguments."""
    config = await global_config(unit)
    if recycle_bin is not None and recycle_bin.get("retention_days") is not None:
        config.set_recycle_bin_retention(recycle_bin["retention_days"])
    if billing is not None:
        config.change_billing(**billing)
    if mail is not None:
        config.change_mail(**mail)
    if login_policy is not None:
        config.change_login_policy(**login_policy)
    if quota_defaults is not None:
        config.set_quota_defaults(quota_defaults)
    return Decided(resource_id=config.id)
