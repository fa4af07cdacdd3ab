"""Decisions of compute commands: create instances (quota, placement, claim) and power them.

A create is one append: the instances, their host claims, the quota allocation and the
placement decisions. Two creates racing for one host both read its version; the second
to append fails the version check and decides again, on the host's fresh claims.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence

import msgspec

from api.services import preemption, references
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.compute import hot_plug
from domain.compute.image import Image
from domain.compute.instance import DELETING, EVACUABLE, Instance
from domain.compute.scheduler import (
    BatchPlacement,
    GpuRequest,
    HostHealth,
    HostView,
    PlacedInstance,
    PlacementRequest,
    Resources,
    SchedulerSettings,
    place,
    place_batch,
)
from domain.compute.scheduler import (
    ServerGroup as GroupView,
)
from domain.compute.scheduler.decision import Decision
from domain.compute.scheduler.view import GpuDevice
from domain.compute.server_group import ServerGroup
from domain.errors import Conflict, NotFound, ValidationFailed
from domain.ids import new_id
from domain.inventory.cluster import Cluster
from domain.inventory.flavor import Flavor
from domain.inventory.host import DISABLED, MAINTENANCE, CapacityExhausted, Host
from domain.inventory.region import Region
from domain.quota.ledger import QuotaLedger, ledger_id
from gateways.eventstore.repository import Repository

MAX_BATCH = 50
HOST_PREFIX = "hst-"
PLACEMENT = SchedulerSettings(subset_size=8)
"""Creates choose among the eight best hosts: fifty at once seldom race for one host."""
STALE_VIEW_RETRIES = 4
BUSY_SECONDS = 0.5
"""Placements again on a refreshed view when a chosen host changed under the cached one;
past that, the host's own re-check and the append's version check still hold."""


class NoCapacity(Conflict):
    code = "no_capacity"


Health = HostHealth
UNHEALTHY = Health(healthy=False)


def host_view(host: Host, cluster: Cluster, health: Health) -> HostView:
    return HostView(
        id=host.id,
        region_id=host.region_id,
        cluster_id=host.cluster_id,
        architecture=cluster.architecture,
        enabled=host.status != DISABLED and cluster.enabled,
        healthy=health.healthy and not host.down,
        maintenance=host.status == MAINTENANCE,
        capacity=Resources(**host.capacity),
        used=Resources(**host.used()),
        cpu_overcommit=cluster.cpu_overcommit,
        memory_overcommit=cluster.memory_overcommit,
        free_gpus=tuple(GpuDevice(g["address"], g["model"]) for g in host.free_gpus()),
        load=health.load,
        labels=host.labels,
        instances=tuple(
            PlacedInstance(
                id=instance_id,
                tenant_id=claim["tenant_id"],
                vcpus=claim["vcpus"],
                memory_mb=claim["memory_mb"],
                disk_gb=claim["disk_gb"],
                server_group_id=claim["server_group_id"],
                preemptible=claim["preemptible"],
            )
            for instance_id, claim in host.claims.items()
        ),
    )


class FleetCache:
    """Every host and cluster in memory, for the scheduler's view, kept fresh by versions.

    Loading a region's hosts for each create costs a read per host; instead this follows
    the store's event headers and loads again only what changed since. A view can still be
    a moment behind another process's append: the claim is made on the host loaded afresh,
    and if its version is not the one the view was built from, the command is decided
    again (as on any version conflict) on a refreshed view.
    """

    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self.position: int | None = None
        self.hosts: dict[str, Host] = {}
        self.clusters: dict[str, Cluster] = {}
        self._views: dict[str, tuple[tuple[int, int, Health], HostView]] = {}
        self._lock = asyncio.Lock()
        self._host_ids: set[str] | None = None
        self._sorted: list[str] | None = None
        """``_host_ids`` in order, None until asked for after a change."""
        self._regions: dict[str, _RegionViews] = {}
        self.busy: dict[str, float] = {}
        """Hosts that commands of this process are claiming right now, until when."""

    def reserve(self, host_ids: Iterable[str]) -> None:
        """Leave these hosts to the command that chose them until its claim is seen."""
        until = time.monotonic() + BUSY_SECONDS
        for host_id in host_ids:
            self.busy[host_id] = until

    def free(self, views: list[HostView]) -> list[HostView]:
        """The views without hosts another command is claiming: racing it would only
        fail the version check. All of them when every host is busy."""
        if not self.busy:
            return views
        now = time.monotonic()
        self.busy = {h: until for h, until in self.busy.items() if until > now}
        free = [view for view in views if view.id not in self.busy]
        return free or views

    async def refresh(self) -> None:
        """Forget every host and cluster that changed since the last refresh."""
        async with self._lock:
            store = self.repository.store
            if self.position is None:
                self.position = await store.last_position()
                return
            while batch := await store.read_all(
                after=self.position, limit=10_000, headers_only=True
            ):
                for event in batch:
                    self.busy.pop(event.originator_id, None)
                    self.forget(event.originator_id)
                    self._learn(event.originator_id)
                self.position = batch[-1].position

    def forget(self, aggregate_id: str) -> None:
        """The host or cluster changed: load it again before it is viewed."""
        if self.hosts.pop(aggregate_id, None) is not None:
            for region in self._regions.values():
                region.stale.add(aggregate_id)
        if self.clusters.pop(aggregate_id, None) is not None:
            self._regions.clear()  # every view of its hosts is built again (seldom)

    def _learn(self, aggregate_id: str) -> None:
        known = self._host_ids
        if known is not None and aggregate_id.startswith(HOST_PREFIX) and aggregate_id not in known:
            known.add(aggregate_id)
            self._sorted = None

    async def host_ids(self, listing: Callable[[], Awaitable[tuple[int, list[str]]]]) -> list[str]:
        """Every host's id, in id order: listed once (``listing`` gives the ids and the
        store position they are complete to), then learnt from the store's headers.

        A create used to query the documents for a thousand ids each time.
        """
        if self._host_ids is None:
            async with self._lock:
                if self._host_ids is None:
                    complete_to, ids = await listing()
                    self._host_ids = set(ids)
                    # Hosts after the listing's position are learnt from the headers:
                    # read from there, even if they were read before.
                    if self.position is None or complete_to < self.position:
                        self.position = complete_to
        await self.refresh()
        if self._sorted is None:
            self._sorted = sorted(self._host_ids)
        return self._sorted

    async def load(self, host_ids: Sequence[str]) -> None:
        """Load the hosts not held, once, however many commands ask at the same time."""
        if all(host_id in self.hosts for host_id in host_ids):
            return
        async with self._lock:
            missing = [host_id for host_id in host_ids if host_id not in self.hosts]
            for start in range(0, len(missing), 16):
                chunk = missing[start : start + 16]
                loaded = await asyncio.gather(*(self.repository.get(h, Host) for h in chunk))
                self.hosts.update(zip(chunk, loaded, strict=True))

    async def host(self, host_id: str) -> Host:
        host = self.hosts.get(host_id)
        if host is None:
            host = self.hosts[host_id] = await self.repository.get(host_id, Host)
        return host

    async def cluster(self, cluster_id: str) -> Cluster:
        cluster = self.clusters.get(cluster_id)
        if cluster is None:
            cluster = self.clusters[cluster_id] = await self.repository.get(cluster_id, Cluster)
        return cluster

    async def region(
        self, region_id: str, host_ids: Sequence[str], health: Mapping[str, Health]
    ) -> Fleet:
        """The region's hosts as the scheduler sees them. Kept between creates: only the
        hosts that changed since (a claim, a beat) are viewed again, not all of them."""
        kept = self._regions.get(region_id)
        if (
            kept is None
            or not kept.complete
            or kept.host_ids is not host_ids
            or kept.health is not health
        ):
            kept = _RegionViews(region_id, host_ids, health)
            # Known while it is made, so hosts that change meanwhile are marked stale in
            # it; used by others only once complete.
            self._regions[region_id] = kept
            for host_id in host_ids:
                await self._view_host(kept, host_id)
            kept.complete = True
        while kept.stale:
            host_id = kept.stale.pop()
            if host_id in kept.views:  # not another region's
                await self._view_host(kept, host_id)
        return Fleet(self, dict(kept.versions), dict(kept.clusters), list(kept.views.values()))

    async def _view_host(self, kept: _RegionViews, host_id: str) -> None:
        # What load() made sure of, unless a refresh since forgot the host.
        host = self.hosts.get(host_id) or await self.host(host_id)
        if host.region_id != kept.region_id:
            return
        cluster = kept.clusters.get(host.cluster_id) or await self.cluster(host.cluster_id)
        kept.clusters[cluster.id] = cluster
        kept.versions[host_id] = host.version
        kept.views[host_id] = self.view(host, cluster, kept.health.get(host_id, UNHEALTHY))

    def view(self, host: Host, cluster: Cluster, health: Health) -> HostView:
        key = (host.version, cluster.version, health)
        cached = self._views.get(host.id)
        if cached is None or cached[0] != key:
            cached = self._views[host.id] = (key, host_view(host, cluster, health))
        return cached[1]


class _RegionViews:
    """A region's host views, and what they were made from."""

    def __init__(
        self, region_id: str, host_ids: Sequence[str], health: Mapping[str, Health]
    ) -> None:
        self.region_id, self.host_ids, self.health = region_id, host_ids, health
        self.views: dict[str, HostView] = {}
        self.versions: dict[str, int] = {}
        self.clusters: dict[str, Cluster] = {}
        self.stale: set[str] = set()
        """Hosts changed since their view was made."""
        self.complete = False


_CACHES: weakref.WeakKeyDictionary[Repository, FleetCache] = weakref.WeakKeyDictionary()


def fleet_cache(repository: Repository) -> FleetCache:
    cache = _CACHES.get(repository)
    if cache is None:
        cache = _CACHES[repository] = FleetCache(repository)
    return cache


class Fleet(msgspec.Struct):
    """A region's hosts as the scheduler sees them, and the versions the view was built from."""

    cache: FleetCache
    versions: dict[str, int]
    clusters: dict[str, Cluster]
    views: list[HostView]

    async def current(self, unit: UnitOfWork, host_ids: Iterable[str]) -> bool:
        """Whether the chosen hosts, loaded afresh into ``unit``, are as the view saw them.

        A host that moved on is forgotten by the cache, so the next view loads it again.
        """
        current = True
        for host_id in host_ids:
            if (await unit.get(host_id, Host)).version != self.versions[host_id]:
                self.cache.forget(host_id)
                current = False
        return current


async def region_fleet(
    unit: UnitOfWork, region_id: str, host_ids: Sequence[str], health: Mapping[str, Health]
) -> Fleet:
    cache = fleet_cache(unit.repository)
    await cache.refresh()
    await cache.load(host_ids)
    return await cache.region(region_id, host_ids, health)


async def create_instances(
    unit: UnitOfWork,
    *,
    tenant_id: str,
    project_id: str | None,
    name: str,
    flavor_id: str,
    image_id: str,
    region_id: str,
    disk_gb: int | None,
    count: int,
    preemptible: bool,
    host_ids: Sequence[str],
    health: Mapping[str, Health],
    charge_mode: str = "on_demand",
    server_group_id: str | None = None,
    projects: tuple[str, ...] | None = None,
) -> Decided:
    """Create ``count`` instances, placed and claimed; every id the request names is checked
    (see ``references``), ``projects`` being those a sub-account is limited to."""
    if not 1 <= count <= MAX_BATCH:
        raise ValidationFailed(f"count runs from 1 to {MAX_BATCH}", field="count")
    scope = references.Scope(tenant_id=tenant_id, projects=projects)
    project_id = await references.project(unit, scope, project_id)
    region = await references.region(unit, region_id)
    flavor = await references.flavor(unit, flavor_id)
    image = await references.image(unit, tenant_id, image_id, region_id)
    group = (
        None
        if server_group_id is None
        else await references.server_group(unit, scope, server_group_id)
    )
    if image.architecture != flavor.architecture:
        raise ValidationFailed("the image and the flavor are for different architectures")
    disk = disk_gb or max(flavor.min_disk_gb, image.min_disk_gb)
    if not max(flavor.min_disk_gb, image.min_disk_gb) <= disk <= flavor.max_disk_gb:
        raise ValidationFailed(
            f"disk_gb must be between {max(flavor.min_disk_gb, image.min_disk_gb)} and "
            f"{flavor.max_disk_gb} for this flavor and image",
            field="disk_gb",
        )
    ledger = await unit.get(ledger_id(tenant_id), QuotaLedger)
    region_defaults = region.quota_defaults
    groups: dict[str, GroupView] = {} if group is None else {group.id: group.scheduler_view()}
    instance_ids = [new_id("i") for _ in range(count)]
    request = PlacementRequest(
        instance_id=instance_ids[0],
        tenant_id=tenant_id,
        region_id=region_id,
        architecture=flavor.architecture,
        vcpus=flavor.vcpus,
        memory_mb=flavor.memory_mb,
        disk_gb=disk,
        gpus=gpu_request(flavor),
        preemptible=preemptible,
        server_group_id=server_group_id,
    )
    spared: set[str] = set()
    while True:  # a victim that cannot be preempted now is spared, and the batch placed again
        fleet, batch = await _placed(
            unit, request, instance_ids, groups, region_id, host_ids, health, spared
        )
        unfit = await preemption.unfit_victims(unit, batch.decisions)
        if not unfit:
            break
        spared |= unfit
    for decision in batch.decisions:
        if decision.host_id is None and decision.preemption is None:
            raise NoCapacity(decision.reason or "no host can take this instance")
    now = clock.now()
    room = hot_plug.ceiling(flavor.vcpus, flavor.memory_mb)
    created: list[str] = []
    for instance_id, decision in zip(instance_ids, batch.decisions, strict=True):
        ledger.allocate(instance_id, region_id, quota_of(flavor), region_defaults)
        record = msgspec.to_builtins(decision)
        host_id, gpus = decision.host_id, decision.gpu_addresses
        if host_id is None:  # a regular instance that fits nowhere: its victims make room
            plan = decision.preemption
            assert plan is not None
            record["preemption"] = await preemption.carry_out(unit, plan, instance_id, tenant_id)
            host_id, gpus = plan.host_id, preemption.gpus_of(batch.hosts, plan.host_id, instance_id)
        host = await unit.get(host_id, Host)
        cluster = fleet.clusters[host.cluster_id]
        host.claim(
            instance_id,
            {"vcpus": flavor.vcpus, "memory_mb": flavor.memory_mb, "disk_gb": disk},
            gpus,
            tenant_id=tenant_id,
            preemptible=preemptible,
            server_group_id=server_group_id,
            cpu_overcommit=cluster.cpu_overcommit,
            memory_overcommit=cluster.memory_overcommit,
        )
        if group is not None:
            group.join(instance_id, host_id)
        instance = Instance._create(
            Instance.Created,
            id=instance_id,
            tenant_id=tenant_id,
            project_id=project_id,
            name=name if count == 1 else f"{name}-{len(created) + 1}",
            region_id=region_id,
            flavor_id=flavor.id,
            image_id=image.id,
            vcpus=flavor.vcpus,
            memory_mb=flavor.memory_mb,
            disk_gb=disk,
            preemptible=preemptible,
            server_group_id=server_group_id,
            requested_at=now,
            charge_mode=charge_mode,
            max_vcpus=room.vcpus,
            max_memory_mb=room.memory_mb,
            gpu_count=flavor.gpu_count,
        )
        instance.schedule(host_id, new_id("stp"), record)
        unit.add(instance)
        created.append(instance_id)
    return Decided(resource_id=created[0], body={"instance_ids": created})


async def _placed(
    unit: UnitOfWork,
    request: PlacementRequest,
    instance_ids: Sequence[str],
    groups: Mapping[str, GroupView],
    region_id: str,
    host_ids: Sequence[str],
    health: Mapping[str, Health],
    spared: Collection[str],
) -> tuple[Fleet, BatchPlacement]:
    """The batch placed on a current view of the region (``spared`` are never victims)."""
    for _ in range(STALE_VIEW_RETRIES):
        fleet = await region_fleet(unit, region_id, host_ids, health)
        if spared:
            fleet.views = preemption.sparing(fleet.views, spared)
        views = fleet.cache.free(fleet.views)
        batch = place_batch(request, instance_ids, views, groups, PLACEMENT)
        chosen = _targets(batch)
        if not any(d.host_id is None for d in batch.decisions) or views is fleet.views:
            fleet.cache.reserve(chosen)
            if await fleet.current(unit, chosen):
                break
        else:  # the busy hosts may be the only ones with room: place on the whole view
            batch = place_batch(request, instance_ids, fleet.views, groups, PLACEMENT)
            chosen = _targets(batch)
            if await fleet.current(unit, chosen):
                break
    return fleet, batch


def _targets(batch: BatchPlacement) -> set[str]:
    """The hosts a batch claims on: chosen ones, and those its preemptions free."""
    chosen = {d.host_id for d in batch.decisions if d.host_id}
    return chosen | {d.preemption.host_id for d in batch.decisions if d.preemption is not None}


async def claim_again(unit: UnitOfWork, instance: Instance) -> None:
    """A start holds the instance's host again if it holds nothing there (it was preempted,
    or its build failed): refused as ``capacity_exhausted`` when the host has no room."""
    if instance.host_id is None:
        return
    host = await unit.get(instance.host_id, Host)
    if instance.id in host.claims:
        return
    cluster = await unit.get(host.cluster_id, Cluster)
    flavor = await unit.find(instance.flavor_id, Flavor)
    wanted = None if flavor is None else gpu_request(flavor)
    gpus: list[str] = []
    if wanted is not None:  # its devices were given up with the claim: free ones of its model
        free = [g["address"] for g in host.free_gpus() if wanted.model in (None, g["model"])]
        if len(free) < wanted.count:
            raise CapacityExhausted(
                f"host {host.hostname} has {len(free)} free GPUs for {instance.id}, "
                f"not {wanted.count}"
            )
        gpus = free[: wanted.count]
    host.claim(
        instance.id,
        {"vcpus": instance.vcpus, "memory_mb": instance.memory_mb, "disk_gb": instance.disk_gb},
        gpus,
        tenant_id=instance.tenant_id,
        preemptible=instance.preemptible,
        server_group_id=instance.server_group_id,
        cpu_overcommit=cluster.cpu_overcommit,
        memory_overcommit=cluster.memory_overcommit,
    )


async def leave_group(unit: UnitOfWork, instance: Instance) -> None:
    if instance.server_group_id is not None:
        group = await unit.find(instance.server_group_id, ServerGroup)
        if group is not None:
            group.leave(instance.id)


async def instance_of(unit: UnitOfWork, instance_id: str, tenant_id: str | None) -> Instance:
    instance = await unit.get(instance_id, Instance, checked=True)
    if tenant_id is not None and instance.tenant_id != tenant_id:
        raise NotFound(f"{instance_id} does not exist", resource_id=instance_id)
    return instance


async def release_host(unit: UnitOfWork, instance: Instance, reason: str) -> None:
    if instance.host_id is not None:
        host = await unit.get(instance.host_id, Host)
        host.release(instance.id, reason)


async def release_quota(unit: UnitOfWork, instance: Instance) -> None:
    ledger = await unit.get(ledger_id(instance.tenant_id), QuotaLedger)
    ledger.release(instance.id)


async def evacuate_instance(
    unit: UnitOfWork,
    instance_id: str,
    from_host_id: str,
    *,
    reason: str,
    host_ids: Sequence[str],
    health: Mapping[str, Health],
) -> Decided:
    """Move one instance off a lost (or drained) host: placed again, claimed, rebuilt.

    Nothing happens when it has already left the host or is in no state to move.
    """
    instance = await unit.get(instance_id, Instance)
    if instance.host_id != from_host_id:
        return Decided(resource_id=instance_id, body={"moved": False})
    if instance.status == DELETING:
        instance.deleted_with_host()
        return Decided(resource_id=instance_id, body={"moved": False})
    if instance.status not in EVACUABLE:
        return Decided(resource_id=instance_id, body={"moved": False})
    decision = await move_claim(unit, instance, from_host_id, host_ids=host_ids, health=health)
    assert decision.host_id is not None
    lost = await unit.get(from_host_id, Host)
    lost.release(instance.id, f"evacuated: {reason}")
    move = instance.migration
    if move is not None and move["to_host_id"] != decision.host_id:
        # Lost mid-migration and rebuilt elsewhere: the migration's target lets go too.
        target = await unit.get(move["to_host_id"], Host)
        target.release(instance.id, f"evacuated elsewhere: {reason}")
    instance.evacuate(decision.host_id, new_id("stp"), msgspec.to_builtins(decision), reason)
    return Decided(resource_id=instance.id, body={"moved": True, "host_id": decision.host_id})


async def move_claim(
    unit: UnitOfWork,
    instance: Instance,
    from_host_id: str,
    *,
    host_ids: Sequence[str],
    health: Mapping[str, Health],
    only: str | None = None,
    among: Collection[str] | None = None,
) -> Decision:
    """Place ``instance`` again away from ``from_host_id`` and claim the target for it.

    The claim (and its server group's membership) is made in the command's append with the
    host's expected version; the source's claim is the caller's to release. ``only`` names
    the one host to check with the scheduler's filters (an operator's choice); ``among``
    the hosts it may choose from.
    """
    flavor = await unit.get(instance.flavor_id, Flavor)
    request = PlacementRequest(
        gpus=gpu_request(flavor),
        instance_id=instance.id,
        tenant_id=instance.tenant_id,
        region_id=instance.region_id,
        architecture=flavor.architecture,
        vcpus=instance.vcpus,
        memory_mb=instance.memory_mb,
        disk_gb=instance.disk_gb,
        preemptible=instance.preemptible,
        server_group_id=instance.server_group_id,
    )
    group: ServerGroup | None = None
    groups: dict[str, GroupView] = {}
    if instance.server_group_id is not None:
        group = await unit.get(instance.server_group_id, ServerGroup)
        others = {i: h for i, h in group.members.items() if i != instance.id}
        groups[group.id] = msgspec.structs.replace(group.scheduler_view(), members=others)
    for _ in range(STALE_VIEW_RETRIES):
        fleet = await region_fleet(unit, instance.region_id, host_ids, health)
        views = [view for view in fleet.views if view.id != from_host_id]
        if among is not None:
            views = [view for view in views if view.id in among]
        if only is not None:
            views = [view for view in views if view.id == only]
            if not views:
                raise ValidationFailed(
                    f"{only} is not another host of region {instance.region_id}",
                    field="host_id",
                )
        decision = place(request, views, groups, PLACEMENT)
        if decision.host_id is None or await fleet.current(unit, [decision.host_id]):
            break
    if decision.host_id is None:
        raise NoCapacity(decision.reason or f"no host can take {instance.id}")
    target = await unit.get(decision.host_id, Host)
    cluster = fleet.clusters[target.cluster_id]
    target.claim(
        instance.id,
        {"vcpus": instance.vcpus, "memory_mb": instance.memory_mb, "disk_gb": instance.disk_gb},
        decision.gpu_addresses,
        tenant_id=instance.tenant_id,
        preemptible=instance.preemptible,
        server_group_id=instance.server_group_id,
        cpu_overcommit=cluster.cpu_overcommit,
        memory_overcommit=cluster.memory_overcommit,
    )
    if group is not None:
        group.join(instance.id, decision.host_id)
    return decision


def gpu_request(flavor: Flavor) -> GpuRequest | None:
    """The passthrough devices a flavor's instances need on their host (None: none)."""
    if flavor.gpu_count == 0:
        return None
    return GpuRequest(flavor.gpu_count, flavor.gpu_model)


def quota_of(flavor: Flavor) -> dict[str, int]:
    """What one instance of ``flavor`` counts against its tenant's quota."""
    usage = {"instances": 1, "vcpus": flavor.vcpus, "memory_mb": flavor.memory_mb}
    if flavor.gpu_count:
        usage["gpus"] = flavor.gpu_count
    return usage


async def resize_instance(unit: UnitOfWork, instance: Instance, flavor_id: str) -> str:
    """Resize on its host (cold, hot or by a restart: see ``Instance.resize``); the claim
    and the quota are taken again at the new size at once, so a host without room for the
    growth refuses it here."""
    flavor = await references.flavor(unit, flavor_id)
    image = await unit.get(instance.image_id, Image)
    if flavor.architecture != image.architecture:
        raise ValidationFailed("the flavor is for another architecture than the image")
    current = await unit.find(instance.flavor_id, Flavor)
    if current is not None and gpu_request(current) != gpu_request(flavor):
        raise ValidationFailed(
            "an instance keeps its GPUs through a resize: choose a flavor with the same "
            "GPU count and model",
            field="flavor_id",
        )
    if not flavor.min_disk_gb <= instance.disk_gb <= flavor.max_disk_gb:
        raise ValidationFailed(
            f"the instance's {instance.disk_gb} GB disk is outside this flavor's "
            f"{flavor.min_disk_gb}-{flavor.max_disk_gb} GB",
            field="flavor_id",
        )
    how = instance.resize(
        flavor.id,
        flavor.vcpus,
        flavor.memory_mb,
        step_id=new_id("stp"),
        maxima=hot_plug.ceiling(flavor.vcpus, flavor.memory_mb),
    )
    ledger = await unit.get(ledger_id(instance.tenant_id), QuotaLedger)
    region = await unit.get(instance.region_id, Region)
    ledger.release(instance.id)
    ledger.allocate(instance.id, instance.region_id, quota_of(flavor), region.quota_defaults)
    host = None if instance.host_id is None else await unit.get(instance.host_id, Host)
    if host is not None and instance.id in host.claims:  # a preempted one holds none
        cluster = await unit.get(host.cluster_id, Cluster)
        held = host.claims[instance.id]
        host.release(instance.id, f"resized to {flavor.id}")
        host.claim(
            instance.id,
            {"vcpus": flavor.vcpus, "memory_mb": flavor.memory_mb, "disk_gb": instance.disk_gb},
            held.get("gpus", []),
            tenant_id=instance.tenant_id,
            preemptible=instance.preemptible,
            server_group_id=instance.server_group_id,
            cpu_overcommit=cluster.cpu_overcommit,
            memory_overcommit=cluster.memory_overcommit,
        )
    return how
