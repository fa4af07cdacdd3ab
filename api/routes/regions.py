"""Regions: the admin's data centres, and the enabled ones tenants may choose from."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import inventory
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body, Description
from api.text import Name as DisplayName
from domain.inventory.name_claim import NAME_PATTERN
from domain.inventory.quota_defaults import MAX_LIMIT
from domain.inventory.region import Region

router = Router()

Name = Annotated[str, msgspec.Meta(pattern=NAME_PATTERN, max_length=63)]
"""An inventory name: lower-case letters, digits, ``.``, ``_`` and ``-``."""
RegionId = Annotated[str, msgspec.Meta(pattern=r"^rgn-[0-9a-hjkmnp-tv-z]{26}$")]
Status = Literal["enabled", "disabled"]
Limit = Annotated[int, msgspec.Meta(ge=0, le=MAX_LIMIT)]


class CreateRegion(Body, kw_only=True, forbid_unknown_fields=True):
    name: Name
    """The region's code (``eu-west-1``); it never changes."""
    display_name: DisplayName | None = None
    description: Description = ""
    enabled: bool = True
    quota_defaults: dict[str, Limit] = msgspec.field(default_factory=dict)
    """Default limits per quota kind in this region, where a tenant has no override."""


class UpdateRegion(Body, kw_only=True, forbid_unknown_fields=True):
    display_name: DisplayName | None = None
    description: Description | None = None
    quota_defaults: dict[str, Limit | None] | None = None
    """Per kind: a new default, or null to fall back to the global default."""


class RegionView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    display_name: str
    description: str
    status: Status
    quota_defaults: dict[str, int]


class RegionPage(msgspec.Struct, kw_only=True):
    items: list[RegionView]
    next_page_token: str | None


class RegionQuery(ListQuery, kw_only=True):
    status: Status | None = None
    name: Name | None = None


class OpenRegionQuery(ListQuery, kw_only=True):
    name: Name | None = None


@router.route(
    "POST",
    "/v1/admin/regions",
    summary="Open a region (a data centre)",
    action="admin:region:create",
    body=CreateRegion,
    response=Accepted,
    status=202,
    tags=("regions",),
)
async def create_region(call: Call) -> web.Response:
    body: CreateRegion = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.open_region(
            unit, body.name, body.display_name, body.description, body.enabled, body.quota_defaults
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/admin/regions",
    summary="List every region",
    action="admin:region:read",
    query=RegionQuery,
    response=RegionPage,
    tags=("regions",),
)
async def list_regions(call: Call) -> web.Response:
    return await list_kind(call, "rgn", call.query, tenant_id=None, filters=("status", "name"))


@router.route(
    "GET",
    "/v1/admin/regions/{id}",
    summary="One region",
    action="admin:region:read",
    response=RegionView,
    kind="rgn",
    tags=("regions",),
)
async def get_region(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "rgn", "admin:region:read")
    )


@router.route(
    "PATCH",
    "/v1/admin/regions/{id}",
    summary="Describe a region or change its default quotas",
    action="admin:region:update",
    body=UpdateRegion,
    response=Accepted,
    status=202,
    kind="rgn",
    tags=("regions",),
)
async def update_region(call: Call) -> web.Response:
    body: UpdateRegion = call.body
    region_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.update_region(
            unit, region_id, body.display_name, body.description, body.quota_defaults
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/regions/{id}/actions/enable",
    summary="Enable a region: tenants see it and may place resources in it",
    action="admin:region:update",
    response=Accepted,
    status=202,
    kind="rgn",
    tags=("regions",),
)
async def enable_region(call: Call) -> web.Response:
    region_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, region_id, Region, enabled=True)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/regions/{id}/actions/disable",
    summary="Disable a region: tenants no longer see it; nothing new goes into it",
    action="admin:region:update",
    response=Accepted,
    status=202,
    kind="rgn",
    tags=("regions",),
)
async def disable_region(call: Call) -> web.Response:
    region_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, region_id, Region, enabled=False)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/regions",
    summary="List the regions a tenant may use (the enabled ones)",
    action="compute:region:read",
    query=OpenRegionQuery,
    response=RegionPage,
    tags=("regions",),
)
async def list_open_regions(call: Call) -> web.Response:
    query = RegionQuery(**msgspec.structs.asdict(call.query), status="enabled")
    return await list_kind(call, "rgn", query, tenant_id=None, filters=("status", "name"))
