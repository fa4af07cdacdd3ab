"""Hosts: the machines of a cluster, registered with their capacity, labels and GPUs."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routes.regions import RegionId
from api.routing import Router
from api.services import inventory
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body
from api.text import Name as DisplayName
from domain.inventory.host import (
    CAPACITY_RANGES,
    HOSTNAME_PATTERN,
    LABEL_KEY_PATTERN,
    MAX_GPUS,
    MAX_LABELS,
    PCI_ADDRESS_PATTERN,
)

router = Router()

ClusterId = Annotated[str, msgspec.Meta(pattern=r"^cls-[0-9a-hjkmnp-tv-z]{26}$")]
Hostname = Annotated[str, msgspec.Meta(pattern=HOSTNAME_PATTERN, max_length=253)]
HostStatus = Literal["enabled", "disabled", "maintenance"]
LabelKey = Annotated[str, msgspec.Meta(pattern=LABEL_KEY_PATTERN, max_length=63)]
LabelValue = Annotated[str, msgspec.Meta(max_length=63)]
Vcpus = Annotated[int, msgspec.Meta(ge=CAPACITY_RANGES["vcpus"][0], le=CAPACITY_RANGES["vcpus"][1])]
MemoryMb = Annotated[
    int, msgspec.Meta(ge=CAPACITY_RANGES["memory_mb"][0], le=CAPACITY_RANGES["memory_mb"][1])
]
DiskGb = Annotated[
    int, msgspec.Meta(ge=CAPACITY_RANGES["disk_gb"][0], le=CAPACITY_RANGES["disk_gb"][1])
]


class Capacity(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    vcpus: Vcpus
    """Physical CPU threads."""
    memory_mb: MemoryMb
    disk_gb: DiskGb
    """Local disk for instances (0 for hosts that only use shared storage)."""


class CapacityChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    vcpus: Vcpus | None = None
    memory_mb: MemoryMb | None = None
    disk_gb: DiskGb | None = None


class Gpu(Body, kw_only=True, forbid_unknown_fields=True):
    address: Annotated[str, msgspec.Meta(pattern=PCI_ADDRESS_PATTERN)]
    """The PCI address, as ``lspci -D`` prints it: ``0000:3b:00.0``."""
    model: DisplayName


Gpus = Annotated[list[Gpu], msgspec.Meta(max_length=MAX_GPUS)]


class RegisterHost(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    cluster_id: ClusterId
    hostname: Hostname
    capacity: Capacity
    labels: Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=MAX_LABELS)] = {}
    gpus: Gpus = []
    enabled: bool = True


class UpdateHost(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    capacity: CapacityChange | None = None
    labels: dict[LabelKey, LabelValue | None] | None = None
    """Labels to set; a null value removes that label."""
    gpus: Gpus | None = None
    """The host's whole list of GPUs, replacing the one recorded."""


class HostView(msgspec.Struct, kw_only=True):
    id: str
    cluster_id: str
    region_id: str
    hostname: str
    name: str
    capacity: Capacity
    labels: dict[str, str]
    gpus: list[Gpu]
    status: HostStatus
    down: bool = False
    """Marked down by the platform: its heartbeat deadline passed."""


class HostPage(msgspec.Struct, kw_only=True):
    items: list[HostView]
    next_page_token: str | None


class HostQuery(ListQuery, kw_only=True):
    cluster_id: ClusterId | None = None
    region_id: RegionId | None = None
    status: HostStatus | None = None
    hostname: Hostname | None = None


def _gpus(gpus: list[Gpu] | None) -> list[dict[str, str]] | None:
    return None if gpus is None else [msgspec.structs.asdict(gpu) for gpu in gpus]


@router.route(
    "POST",
    "/v1/admin/hosts",
    summary="Register a host in a cluster, with its capacity",
    action="admin:host:create",
    body=RegisterHost,
    response=Accepted,
    status=202,
    tags=("hosts",),
)
async def register_host(call: Call) -> web.Response:
    body: RegisterHost = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.register_host(
            unit,
            body.cluster_id,
            body.hostname,
            msgspec.structs.asdict(body.capacity),
            body.labels,
            _gpus(body.gpus) or [],
            body.enabled,
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/admin/hosts",
    summary="List hosts",
    action="admin:host:read",
    query=HostQuery,
    response=HostPage,
    tags=("hosts",),
)
async def list_hosts(call: Call) -> web.Response:
    return await list_kind(
        call,
        "hst",
        call.query,
        tenant_id=None,
        filters=("cluster_id", "region_id", "status", "hostname"),
    )


@router.route(
    "GET",
    "/v1/admin/hosts/{id}",
    summary="One host",
    action="admin:host:read",
    response=HostView,
    kind="hst",
    tags=("hosts",),
)
async def get_host(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "hst", "admin:host:read")
    )


@router.route(
    "PATCH",
    "/v1/admin/hosts/{id}",
    summary="Record a host's new capacity, labels or GPUs",
    action="admin:host:update",
    body=UpdateHost,
    response=Accepted,
    status=202,
    kind="hst",
    tags=("hosts",),
)
async def update_host(call: Call) -> web.Response:
    body: UpdateHost = call.body
    host_id = call.request.match_info["id"]
    capacity = None
    if body.capacity is not None:
        given = msgspec.structs.asdict(body.capacity)
        capacity = {key: value for key, value in given.items() if value is not None}

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.update_host(unit, host_id, capacity, body.labels, _gpus(body.gpus))

    return call.accepted(await call.execute(decide, tenant_id=None))


async def _set_status(call: Call, status: str) -> web.Response:
    host_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.set_host_status(unit, host_id, status)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/hosts/{id}/actions/enable",
    summary="Enable a host: the scheduler may place on it",
    action="admin:host:update",
    response=Accepted,
    status=202,
    kind="hst",
    tags=("hosts",),
)
async def enable_host(call: Call) -> web.Response:
    return await _set_status(call, "enabled")


@router.route(
    "POST",
    "/v1/admin/hosts/{id}/actions/disable",
    summary="Disable a host: nothing new is placed on it",
    action="admin:host:update",
    response=Accepted,
    status=202,
    kind="hst",
    tags=("hosts",),
)
async def disable_host(call: Call) -> web.Response:
    return await _set_status(call, "disabled")


@router.route(
    "POST",
    "/v1/admin/hosts/{id}/actions/maintenance",
    summary="Put a host into maintenance: nothing new is placed on it and its instances are "
    "moved to other hosts (rebuilt from their images)",
    action="admin:host:update",
    response=Accepted,
    status=202,
    kind="hst",
    tags=("hosts",),
)
async def maintain_host(call: Call) -> web.Response:
    return await _set_status(call, "maintenance")
