"""Flavors: the instance sizes on sale, and the public, enabled ones tenants may order."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routes.clusters import Architecture
from api.routes.regions import Name, Status
from api.routing import Router
from api.services import inventory
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body
from api.text import Name as DisplayName
from domain.inventory.flavor import LIMITS, Flavor

router = Router()

Visibility = Literal["public", "private"]


def _bounded(field: str) -> msgspec.Meta:
    low, high = LIMITS[field]
    return msgspec.Meta(ge=low, le=high)


class DiskRange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    min_gb: Annotated[int, _bounded("min_disk_gb")]
    max_gb: Annotated[int, _bounded("max_disk_gb")]


class GpuSpec(Body, kw_only=True, forbid_unknown_fields=True):
    count: Annotated[int, _bounded("gpu_count")] = 0
    model: DisplayName | None = None
    """A GPU model, or null for any model."""


class CreateFlavor(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    vcpus: Annotated[int, _bounded("vcpus")]
    memory_mb: Annotated[int, _bounded("memory_mb")]
    disk: DiskRange
    """The root disk sizes an instance of this flavor may have."""
    gpus: GpuSpec = msgspec.field(default_factory=GpuSpec)
    architecture: Architecture = "x86_64"
    public: bool = True
    """Public flavors are listed to every tenant."""
    enabled: bool = True


class UpdateFlavor(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A flavor's size never changes: instances were sold on it. Define a new one instead."""

    name: Name | None = None
    public: bool | None = None


class FlavorView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    vcpus: int
    memory_mb: int
    disk: DiskRange
    gpus: GpuSpec
    architecture: Architecture
    visibility: Visibility
    status: Status


class FlavorPage(msgspec.Struct, kw_only=True):
    items: list[FlavorView]
    next_page_token: str | None


class FlavorQuery(ListQuery, kw_only=True):
    architecture: Architecture | None = None
    visibility: Visibility | None = None
    status: Status | None = None
    name: Name | None = None


class OrderableFlavorQuery(ListQuery, kw_only=True):
    architecture: Architecture | None = None
    name: Name | None = None


FILTERS = ("architecture", "visibility", "status", "name")


@router.route(
    "POST",
    "/v1/admin/flavors",
    summary="Define a flavor",
    action="admin:flavor:create",
    body=CreateFlavor,
    response=Accepted,
    status=202,
    tags=("flavors",),
)
async def create_flavor(call: Call) -> web.Response:
    body: CreateFlavor = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.define_flavor(
            unit,
            body.name,
            body.vcpus,
            body.memory_mb,
            (body.disk.min_gb, body.disk.max_gb),
            (body.gpus.count, body.gpus.model),
            body.architecture,
            body.public,
            body.enabled,
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/admin/flavors",
    summary="List every flavor",
    action="admin:flavor:read",
    query=FlavorQuery,
    response=FlavorPage,
    tags=("flavors",),
)
async def list_flavors(call: Call) -> web.Response:
    return await list_kind(call, "flv", call.query, tenant_id=None, filters=FILTERS)


@router.route(
    "GET",
    "/v1/admin/flavors/{id}",
    summary="One flavor",
    action="admin:flavor:read",
    response=FlavorView,
    kind="flv",
    tags=("flavors",),
)
async def get_flavor(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "flv", "admin:flavor:read")
    )


@router.route(
    "PATCH",
    "/v1/admin/flavors/{id}",
    summary="Rename a flavor, or make it public or private",
    action="admin:flavor:update",
    body=UpdateFlavor,
    response=Accepted,
    status=202,
    kind="flv",
    tags=("flavors",),
)
async def update_flavor(call: Call) -> web.Response:
    body: UpdateFlavor = call.body
    flavor_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.update_flavor(unit, flavor_id, body.name, body.public)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/flavors/{id}/actions/enable",
    summary="Enable a flavor: it may be ordered",
    action="admin:flavor:update",
    response=Accepted,
    status=202,
    kind="flv",
    tags=("flavors",),
)
async def enable_flavor(call: Call) -> web.Response:
    flavor_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, flavor_id, Flavor, enabled=True)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/flavors/{id}/actions/disable",
    summary="Disable a flavor: no new instance is ordered with it",
    action="admin:flavor:update",
    response=Accepted,
    status=202,
    kind="flv",
    tags=("flavors",),
)
async def disable_flavor(call: Call) -> web.Response:
    flavor_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, flavor_id, Flavor, enabled=False)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/flavors",
    summary="List the flavors a tenant may order (public and enabled)",
    action="compute:flavor:read",
    query=OrderableFlavorQuery,
    response=FlavorPage,
    tags=("flavors",),
)
async def list_orderable_flavors(call: Call) -> web.Response:
    query = FlavorQuery(**msgspec.structs.asdict(call.query), visibility="public", status="enabled")
    return await list_kind(call, "flv", query, tenant_id=None, filters=FILTERS)
