"""Image pools: where a region stores images and disks (Ceph RBD or a qcow2 directory)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routes.regions import Name, RegionId, Status
from api.routing import Router
from api.services import inventory
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain.inventory.image_pool import ImagePool

router = Router()

Backend = Literal["rbd", "qcow2"]


class CreateImagePool(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    region_id: RegionId
    name: Name
    backend: Backend
    location: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    """The Ceph pool's name (rbd), or an absolute directory path (qcow2)."""
    enabled: bool = True


class UpdateImagePool(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None


class ImagePoolView(msgspec.Struct, kw_only=True):
    id: str
    region_id: str
    name: str
    backend: Backend
    location: str
    status: Status


class ImagePoolPage(msgspec.Struct, kw_only=True):
    items: list[ImagePoolView]
    next_page_token: str | None


class ImagePoolQuery(ListQuery, kw_only=True):
    region_id: RegionId | None = None
    backend: Backend | None = None
    status: Status | None = None
    name: Name | None = None


@router.route(
    "POST",
    "/v1/admin/image-pools",
    summary="Define an image pool in an enabled region",
    action="admin:imagepool:create",
    body=CreateImagePool,
    response=Accepted,
    status=202,
    tags=("image-pools",),
)
async def create_image_pool(call: Call) -> web.Response:
    body: CreateImagePool = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.define_image_pool(
            unit, body.region_id, body.name, body.backend, body.location, body.enabled
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/admin/image-pools",
    summary="List image pools",
    action="admin:imagepool:read",
    query=ImagePoolQuery,
    response=ImagePoolPage,
    tags=("image-pools",),
)
async def list_image_pools(call: Call) -> web.Response:
    return await list_kind(
        call,
        "imp",
        call.query,
        tenant_id=None,
        filters=("region_id", "backend", "status", "name"),
    )


@router.route(
    "GET",
    "/v1/admin/image-pools/{id}",
    summary="One image pool",
    action="admin:imagepool:read",
    response=ImagePoolView,
    kind="imp",
    tags=("image-pools",),
)
async def get_image_pool(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "imp", "admin:imagepool:read")
    )


@router.route(
    "PATCH",
    "/v1/admin/image-pools/{id}",
    summary="Rename an image pool (its backend and location never change)",
    action="admin:imagepool:update",
    body=UpdateImagePool,
    response=Accepted,
    status=202,
    kind="imp",
    tags=("image-pools",),
)
async def update_image_pool(call: Call) -> web.Response:
    body: UpdateImagePool = call.body
    pool_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.rename_image_pool(unit, pool_id, body.name)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/image-pools/{id}/actions/enable",
    summary="Enable an image pool",
    action="admin:imagepool:update",
    response=Accepted,
    status=202,
    kind="imp",
    tags=("image-pools",),
)
async def enable_image_pool(call: Call) -> web.Response:
    pool_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, pool_id, ImagePool, enabled=True)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/image-pools/{id}/actions/disable",
    summary="Disable an image pool: nothing new is stored in it",
    action="admin:imagepool:update",
    response=Accepted,
    status=202,
    kind="imp",
    tags=("image-pools",),
)
async def disable_image_pool(call: Call) -> web.Response:
    pool_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, pool_id, ImagePool, enabled=False)

    return call.accepted(await call.execute(decide, tenant_id=None))
