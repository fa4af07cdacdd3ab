"""Tenants: the platform admin's side (create, freeze, recharge) and a tenant's own view."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import billing, identity
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body, Email, Name, Reason
from domain.errors import NotFound
from domain.ids import new_id

router = Router()

Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]


class CreateTenant(Body, kw_only=True, forbid_unknown_fields=True):
    name: Name
    owner_email: Email
    owner_password: Annotated[str, msgspec.Meta(min_length=12, max_length=200)]
    currency: Currency = "USD"


class UpdateTenant(Body, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    contact_email: Email | None = None


class FreezeTenant(Body, kw_only=True, forbid_unknown_fields=True):
    reason: Reason


class Recharge(Body, kw_only=True, forbid_unknown_fields=True):
    amount_minor: Annotated[int, msgspec.Meta(gt=0, le=10**13)]
    currency: Currency
    reference: Reason


class TenantView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    currency: str
    contact_email: str | None
    status: str
    freeze_reason: str | None


class TenantPage(msgspec.Struct, kw_only=True):
    items: list[TenantView]
    next_page_token: str | None


class TenantQuery(ListQuery, kw_only=True):
    status: str | None = None
    name: str | None = None


@router.route(
    "POST",
    "/v1/admin/tenants",
    summary="Create a tenant and its owner",
    action="admin:tenant:create",
    body=CreateTenant,
    response=Accepted,
    status=202,
    tags=("tenants",),
)
async def create_tenant(call: Call) -> web.Response:
    body: CreateTenant = call.body
    # The new tenant owns its creation events, so its exports and streams include them.
    tenant_id = new_id("tnt")

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.create_tenant(
            unit, tenant_id, body.name, body.currency, body.owner_email, body.owner_password
        )

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/admin/tenants",
    summary="List every tenant",
    action="admin:tenant:read",
    query=TenantQuery,
    response=TenantPage,
    tags=("tenants",),
)
async def list_tenants(call: Call) -> web.Response:
    query: TenantQuery = call.query
    return await list_kind(call, "tnt", query, tenant_id=None, filters=("status", "name"))


@router.route(
    "GET",
    "/v1/admin/tenants/{id}",
    summary="One tenant",
    action="admin:tenant:read",
    response=TenantView,
    kind="tnt",
    tags=("tenants",),
)
async def get_tenant(call: Call) -> web.Response:
    document = await call.document(call.request.match_info["id"], "tnt", "admin:tenant:read")
    return await call.one(document)


@router.route(
    "PATCH",
    "/v1/admin/tenants/{id}",
    summary="Rename a tenant or change its contact",
    action="admin:tenant:update",
    body=UpdateTenant,
    response=Accepted,
    status=202,
    kind="tnt",
    tags=("tenants",),
)
async def update_tenant(call: Call) -> web.Response:
    body: UpdateTenant = call.body
    tenant_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        tenant = await identity.tenant_of(unit, tenant_id)
        tenant.update(body.name, body.contact_email)
        return Decided(resource_id=tenant.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/admin/tenants/{id}/actions/freeze",
    summary="Freeze a tenant: it can read but not create or start anything",
    action="admin:tenant:freeze",
    body=FreezeTenant,
    response=Accepted,
    status=202,
    kind="tnt",
    tags=("tenants",),
)
async def freeze_tenant(call: Call) -> web.Response:
    body: FreezeTenant = call.body
    tenant_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        tenant = await identity.tenant_of(unit, tenant_id)
        tenant.freeze(body.reason)
        return Decided(resource_id=tenant.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/admin/tenants/{id}/actions/unfreeze",
    summary="Unfreeze a tenant",
    action="admin:tenant:freeze",
    response=Accepted,
    status=202,
    kind="tnt",
    tags=("tenants",),
)
async def unfreeze_tenant(call: Call) -> web.Response:
    tenant_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        tenant = await identity.tenant_of(unit, tenant_id)
        tenant.unfreeze()
        return Decided(resource_id=tenant.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/admin/tenants/{id}/actions/recharge",
    summary="Credit a tenant's billing account (lifts a freeze for arrears once paid up)",
    action="admin:tenant:recharge",
    body=Recharge,
    response=Accepted,
    status=202,
    kind="tnt",
    tags=("tenants",),
)
async def recharge_tenant(call: Call) -> web.Response:
    body: Recharge = call.body
    tenant_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await billing.recharge(
            unit, tenant_id, body.amount_minor, body.currency, body.reference
        )

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/tenant",
    summary="The caller's own tenant",
    action="tenant:tenant:read",
    response=TenantView,
    tags=("tenants",),
)
async def my_tenant(call: Call) -> web.Response:
    tenant_id = call.me.tenant_id
    if tenant_id is None:
        raise NotFound("platform staff belong to no tenant")
    return await call.one(await call.document(tenant_id, "tnt", "tenant:tenant:read"))
