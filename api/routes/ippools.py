"""IP pools: a region's IPv4 and IPv6 blocks, and the ranges handed out from them."""

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
from domain.inventory.ip_pool import MAX_RANGES, IpPool

router = Router()

Address = Annotated[str, msgspec.Meta(min_length=2, max_length=45)]
"""An IPv4 or IPv6 address, checked against the pool's CIDR."""
Cidr = Annotated[str, msgspec.Meta(min_length=3, max_length=49)]
Purpose = Literal["public", "private", "management"]


class AddressRange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    start: Address
    end: Address


Ranges = Annotated[list[AddressRange], msgspec.Meta(min_length=1, max_length=MAX_RANGES)]


class CreateIpPool(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    region_id: RegionId
    name: Name
    cidr: Cidr
    """The network, without host bits: ``203.0.113.0/24``, ``2001:db8::/64``."""
    ranges: Ranges
    """Addresses handed out, inside the CIDR, not overlapping."""
    gateway: Address
    """Inside the CIDR, outside every range."""
    purpose: Purpose
    ip_version: Literal[4, 6] | None = None
    """Optional: when given, it must agree with the CIDR."""
    enabled: bool = True


class UpdateIpPool(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    ranges: Ranges | None = None
    """The pool's whole list of ranges, replacing the one recorded."""
    gateway: Address | None = None


class IpPoolView(msgspec.Struct, kw_only=True):
    id: str
    region_id: str
    name: str
    ip_version: Literal[4, 6]
    cidr: str
    ranges: list[AddressRange]
    gateway: str
    purpose: Purpose
    status: Status


class IpPoolPage(msgspec.Struct, kw_only=True):
    items: list[IpPoolView]
    next_page_token: str | None


class IpPoolQuery(ListQuery, kw_only=True):
    region_id: RegionId | None = None
    purpose: Purpose | None = None
    ip_version: Literal["4", "6"] | None = None
    status: Status | None = None
    name: Name | None = None


def _ranges(ranges: list[AddressRange] | None) -> list[dict[str, str]] | None:
    return None if ranges is None else [msgspec.structs.asdict(r) for r in ranges]


@router.route(
    "POST",
    "/v1/admin/ip-pools",
    summary="Define an IP pool in an enabled region",
    action="admin:ippool:create",
    body=CreateIpPool,
    response=Accepted,
    status=202,
    tags=("ip-pools",),
)
async def create_ip_pool(call: Call) -> web.Response:
    body: CreateIpPool = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.define_ip_pool(
            unit,
            body.region_id,
            body.name,
            body.cidr,
            _ranges(body.ranges) or [],
            body.gateway,
            body.purpose,
            body.ip_version,
            body.enabled,
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/admin/ip-pools",
    summary="List IP pools",
    action="admin:ippool:read",
    query=IpPoolQuery,
    response=IpPoolPage,
    tags=("ip-pools",),
)
async def list_ip_pools(call: Call) -> web.Response:
    return await list_kind(
        call,
        "ipp",
        call.query,
        tenant_id=None,
        filters=("region_id", "purpose", "ip_version", "status", "name"),
    )


@router.route(
    "GET",
    "/v1/admin/ip-pools/{id}",
    summary="One IP pool",
    action="admin:ippool:read",
    response=IpPoolView,
    kind="ipp",
    tags=("ip-pools",),
)
async def get_ip_pool(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "ipp", "admin:ippool:read")
    )


@router.route(
    "PATCH",
    "/v1/admin/ip-pools/{id}",
    summary="Rename an IP pool, or change its ranges or gateway",
    action="admin:ippool:update",
    body=UpdateIpPool,
    response=Accepted,
    status=202,
    kind="ipp",
    tags=("ip-pools",),
)
async def update_ip_pool(call: Call) -> web.Response:
    body: UpdateIpPool = call.body
    pool_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.update_ip_pool(
            unit, pool_id, body.name, _ranges(body.ranges), body.gateway
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/ip-pools/{id}/actions/enable",
    summary="Enable an IP pool: addresses may be handed out from it",
    action="admin:ippool:update",
    response=Accepted,
    status=202,
    kind="ipp",
    tags=("ip-pools",),
)
async def enable_ip_pool(call: Call) -> web.Response:
    pool_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, pool_id, IpPool, enabled=True)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/ip-pools/{id}/actions/disable",
    summary="Disable an IP pool: no new address is handed out from it",
    action="admin:ippool:update",
    response=Accepted,
    status=202,
    kind="ipp",
    tags=("ip-pools",),
)
async def disable_ip_pool(call: Call) -> web.Response:
    pool_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, pool_id, IpPool, enabled=False)

    return call.accepted(await call.execute(decide, tenant_id=None))
