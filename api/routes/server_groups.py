"""Server groups: instances a tenant wants kept together (affinity) or apart (anti-affinity)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import references
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork, other_tenants
from domain.compute.server_group import ServerGroup
from domain.errors import ValidationFailed

router = Router()

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9]{0,11}-[0-9a-hjkmnp-tv-z]{26}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
Policy = Literal["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]


class CreateServerGroup(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    policy: Policy
    max_per_host: Annotated[int, msgspec.Meta(ge=1, le=1000)] | None = None
    """Anti-affinity: members one host may hold (default 1); other policies: a hard cap."""
    project_id: Id | None = None


class ServerGroupView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    project_id: str | None
    name: str
    policy: Policy
    max_per_host: int | None
    members: dict[str, str]
    """Instance id → the host it is placed on."""
    status: Literal["active", "deleted"]


class ServerGroupPage(msgspec.Struct, kw_only=True):
    items: list[ServerGroupView]
    next_page_token: str | None


class ServerGroupQuery(ListQuery, kw_only=True):
    name: str | None = None
    policy: Policy | None = None
    status: Literal["active", "deleted"] | None = None


def _tenant(call: Call) -> str:
    if call.me.tenant_id is None:
        raise ValidationFailed("server groups belong to a tenant")
    return call.me.tenant_id


@router.route(
    "POST",
    "/v1/server-groups",
    summary="Create a server group (affinity, anti-affinity or a soft variant)",
    action="compute:server-group:create",
    body=CreateServerGroup,
    response=Accepted,
    status=202,
    tags=("server-groups",),
)
async def create_server_group(call: Call) -> web.Response:
    body: CreateServerGroup = call.body
    tenant_id = _tenant(call)
    scope = references.Scope(tenant_id=tenant_id, projects=call.me.projects)

    async def decide(unit: UnitOfWork) -> Decided:
        project_id = await references.project(unit, scope, body.project_id)
        group = ServerGroup.form(tenant_id, project_id, body.name, body.policy, body.max_per_host)
        unit.add(group)
        return Decided(resource_id=group.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/server-groups",
    summary="List server groups",
    action="compute:server-group:read",
    query=ServerGroupQuery,
    response=ServerGroupPage,
    tags=("server-groups",),
)
async def list_server_groups(call: Call) -> web.Response:
    return await list_kind(
        call,
        "sg",
        call.query,
        tenant_id=_tenant(call),
        projects=call.me.projects,
        filters=("name", "policy", "status"),
    )


@router.route(
    "GET",
    "/v1/server-groups/{id}",
    summary="One server group, with where its members run",
    action="compute:server-group:read",
    response=ServerGroupView,
    kind="sg",
    tags=("server-groups",),
)
async def get_server_group(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "sg", "compute:server-group:read")
    )


@router.route(
    "DELETE",
    "/v1/server-groups/{id}",
    summary="Delete an empty server group",
    action="compute:server-group:delete",
    response=Accepted,
    status=202,
    kind="sg",
    tags=("server-groups",),
)
async def delete_server_group(call: Call) -> web.Response:
    tenant_id = _tenant(call)
    group_id = call.request.match_info["id"]
    await call.document(group_id, "sg", "compute:server-group:delete")

    async def decide(unit: UnitOfWork) -> Decided:
        group = await unit.get(group_id, ServerGroup, checked=True)
        if group.tenant_id != tenant_id:
            raise other_tenants(group_id)
        group.delete()
        return Decided(resource_id=group.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))
