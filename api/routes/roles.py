"""Custom roles and projects: how a tenant shapes what its sub-accounts may do."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import identity
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body, Description, Name
from domain.errors import ValidationFailed
from domain.identity.project import Project
from domain.identity.role import Role
from domain.quota.kinds import GLOBAL_REGION
from domain.quota.ledger import QuotaLedger, ledger_id

router = Router()

Action = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CreateRole(Body, kw_only=True, forbid_unknown_fields=True):
    name: Name
    actions: list[Action]


class SetRoleActions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    actions: list[Action]


class RoleView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    name: str
    actions: list[str]


class RolePage(msgspec.Struct, kw_only=True):
    items: list[RoleView]
    next_page_token: str | None


class CreateProject(Body, kw_only=True, forbid_unknown_fields=True):
    name: Name
    description: Description = ""


class ProjectView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    name: str
    description: str


class ProjectPage(msgspec.Struct, kw_only=True):
    items: list[ProjectView]
    next_page_token: str | None


class NameQuery(ListQuery, kw_only=True):
    name: str | None = None


def _tenant(call: Call) -> str:
    if call.me.tenant_id is None:
        raise ValidationFailed("roles and projects belong to a tenant")
    return call.me.tenant_id


@router.route(
    "POST",
    "/v1/roles",
    summary="Create a custom role",
    action="iam:role:create",
    body=CreateRole,
    response=Accepted,
    status=202,
    tags=("roles",),
)
async def create_role(call: Call) -> web.Response:
    body: CreateRole = call.body
    tenant_id = _tenant(call)

    async def decide(unit: UnitOfWork) -> Decided:
        role = Role(tenant_id=tenant_id, name=body.name, actions=list(body.actions))
        unit.add(role)
        return Decided(resource_id=role.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/roles",
    summary="List custom roles",
    action="iam:role:read",
    query=NameQuery,
    response=RolePage,
    tags=("roles",),
)
async def list_roles(call: Call) -> web.Response:
    return await list_kind(call, "role", call.query, tenant_id=_tenant(call), filters=("name",))


@router.route(
    "GET",
    "/v1/roles/{id}",
    summary="One custom role",
    action="iam:role:read",
    response=RoleView,
    kind="role",
    tags=("roles",),
)
async def get_role(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "role", "iam:role:read")
    )


@router.route(
    "PUT",
    "/v1/roles/{id}/actions",
    summary="Replace a custom role's actions",
    action="iam:role:update",
    body=SetRoleActions,
    response=Accepted,
    status=202,
    kind="role",
    tags=("roles",),
)
async def set_role_actions(call: Call) -> web.Response:
    body: SetRoleActions = call.body
    tenant_id = _tenant(call)
    role_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.set_role_actions(unit, tenant_id, role_id, list(body.actions))

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/projects",
    summary="Create a project (resource group)",
    action="iam:project:create",
    body=CreateProject,
    response=Accepted,
    status=202,
    tags=("projects",),
)
async def create_project(call: Call) -> web.Response:
    body: CreateProject = call.body
    tenant_id = _tenant(call)

    async def decide(unit: UnitOfWork) -> Decided:
        project = Project(tenant_id=tenant_id, name=body.name, description=body.description)
        ledger = await unit.get(ledger_id(tenant_id), QuotaLedger)
        defaults = await identity.global_quota_defaults(unit)
        ledger.allocate(project.id, GLOBAL_REGION, {"projects": 1}, defaults)
        unit.add(project)
        return Decided(resource_id=project.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/projects",
    summary="List projects",
    action="iam:project:read",
    query=NameQuery,
    response=ProjectPage,
    tags=("projects",),
)
async def list_projects(call: Call) -> web.Response:
    return await list_kind(
        call,
        "prj",
        call.query,
        tenant_id=_tenant(call),
        projects=call.me.projects,
        filters=("name",),
    )


@router.route(
    "GET",
    "/v1/projects/{id}",
    summary="One project",
    action="iam:project:read",
    response=ProjectView,
    kind="prj",
    tags=("projects",),
)
async def get_project(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "prj", "iam:project:read")
    )
