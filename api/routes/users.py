"""Users: a tenant's sub-accounts, and the platform's own staff."""

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
from api.text import Body, Email
from domain.errors import ValidationFailed
from gateways.passwords import hash_off_loop

router = Router()

Password = Annotated[str, msgspec.Meta(min_length=12, max_length=200)]
Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9]{0,11}-[0-9a-z]{26}$")]


class CreateUser(Body, kw_only=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    roles: list[str] = msgspec.field(default_factory=lambda: ["read-only"])
    custom_roles: list[Id] = msgspec.field(default_factory=list)
    projects: list[Id] | None = None
    """Limit the sub-account to these projects; omit for all of the tenant's."""


class SetPermissions(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    roles: list[str]
    custom_roles: list[Id] = []
    projects: list[Id] | None = None


class ChangePassword(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    current_password: Annotated[str, msgspec.Meta(max_length=200)]
    """The password in force: a session left open, or a stolen token, cannot set a new one."""
    new_password: Password


class CreateStaff(Body, kw_only=True, forbid_unknown_fields=True):
    email: Email
    password: Password
    roles: list[str] = msgspec.field(default_factory=lambda: ["platform:operator"])


class UserView(msgspec.Struct, kw_only=True):
    id: str
    email: str
    tenant_id: str | None
    kind: str
    roles: list[str]
    custom_roles: list[str]
    projects: list[str] | None
    status: str


class UserPage(msgspec.Struct, kw_only=True):
    items: list[UserView]
    next_page_token: str | None


class UserQuery(ListQuery, kw_only=True):
    status: str | None = None
    email: str | None = None


def _tenant(call: Call) -> str:
    tenant_id = call.me.tenant_id
    if tenant_id is None:
        raise ValidationFailed("platform staff manage tenants' users through their owners")
    return tenant_id


@router.route(
    "POST",
    "/v1/users",
    summary="Create a sub-account",
    action="iam:user:create",
    body=CreateUser,
    response=Accepted,
    status=202,
    tags=("users",),
)
async def create_user(call: Call) -> web.Response:
    body: CreateUser = call.body
    tenant_id = _tenant(call)

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.create_sub_account(
            unit,
            tenant_id,
            body.email,
            body.password,
            body.roles,
            body.custom_roles,
            body.projects,
        )

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/users",
    summary="List the tenant's users",
    action="iam:user:read",
    query=UserQuery,
    response=UserPage,
    tags=("users",),
)
async def list_users(call: Call) -> web.Response:
    return await list_kind(
        call, "usr", call.query, tenant_id=_tenant(call), filters=("status", "email")
    )


@router.route(
    "GET",
    "/v1/users/{id}",
    summary="One user",
    action="iam:user:read",
    response=UserView,
    kind="usr",
    tags=("users",),
)
async def get_user(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "usr", "iam:user:read")
    )


@router.route(
    "PUT",
    "/v1/users/{id}/permissions",
    summary="Set a sub-account's roles and projects",
    action="iam:user:update",
    body=SetPermissions,
    response=Accepted,
    status=202,
    kind="usr",
    tags=("users",),
)
async def set_permissions(call: Call) -> web.Response:
    body: SetPermissions = call.body
    tenant_id = _tenant(call)
    user_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.set_permissions(
            unit, tenant_id, user_id, body.roles, body.custom_roles, body.projects
        )

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/users/{id}/actions/disable",
    summary="Disable a sub-account",
    action="iam:user:delete",
    response=Accepted,
    status=202,
    kind="usr",
    tags=("users",),
)
async def disable_user(call: Call) -> web.Response:
    tenant_id = _tenant(call)
    user_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.disable_user(unit, tenant_id, user_id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/me/actions/change-password",
    summary="Change one's own password (signed in as oneself, never with an API key)",
    action="self:password:change",
    body=ChangePassword,
    response=Accepted,
    status=202,
    tags=("users",),
)
async def change_password(call: Call) -> web.Response:
    body: ChangePassword = call.body
    me = call.me  # the router refused API keys (``api_key_not_allowed``): a session's user
    new_hash = await hash_off_loop(identity.check_password(body.new_password))

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.change_password(unit, me.user_id, body.current_password, new_hash)

    return call.accepted(
        await call.execute(decide, tenant_id=me.tenant_id, action="iam:password:change")
    )


@router.route(
    "POST",
    "/v1/admin/users",
    summary="Create a platform admin or operator",
    action="admin:user:create",
    body=CreateStaff,
    response=Accepted,
    status=202,
    tags=("users",),
)
async def create_staff(call: Call) -> web.Response:
    body: CreateStaff = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.create_platform_user(unit, body.email, body.password, body.roles)

    return call.accepted(await call.execute(decide, tenant_id=None))
