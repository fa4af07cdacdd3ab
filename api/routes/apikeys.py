"""API keys: a key id and a secret for programs; only the secret's hash is kept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import ListQuery, list_kind
from api.routing import Router
from api.services import identity
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body, Name
from domain.identity.role import check_actions

router = Router()


class CreateApiKey(Body, kw_only=True, forbid_unknown_fields=True):
    name: Name
    actions: list[Annotated[str, msgspec.Meta(max_length=100)]] | None = None
    """Narrow the key below its user's permissions; omit to act as the user."""
    expires_at: datetime | None = None


class CreatedApiKey(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str
    position: int
    key_id: str
    api_key: str | None = None
    """Send as ``Authorization: Bearer <api_key>``. Shown once, never stored: a repeat of
    the request (same Idempotency-Key) answers without it."""


class ApiKeyView(msgspec.Struct, kw_only=True):
    id: str
    user_id: str
    tenant_id: str | None
    name: str
    actions: list[str] | None
    expires_at: str | None
    status: str


class ApiKeyPage(msgspec.Struct, kw_only=True):
    items: list[ApiKeyView]
    next_page_token: str | None


class ApiKeyQuery(ListQuery, kw_only=True):
    status: str | None = None
    user_id: str | None = None


class Revoked(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str | None
    position: int


@router.route(
    "POST",
    "/v1/api-keys",
    summary="Create an API key for the caller",
    action="iam:apikey:create",
    body=CreateApiKey,
    response=CreatedApiKey,
    status=202,
    tags=("api keys",),
)
async def create_api_key(call: Call) -> web.Response:
    body: CreateApiKey = call.body
    me = call.me
    actions = None if body.actions is None else check_actions(list(body.actions))

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.create_api_key(unit, me, body.name, actions, body.expires_at)

    return call.accepted(await call.execute(decide, tenant_id=me.tenant_id))


@router.route(
    "GET",
    "/v1/api-keys",
    summary="List API keys",
    action="iam:apikey:read",
    query=ApiKeyQuery,
    response=ApiKeyPage,
    tags=("api keys",),
)
async def list_api_keys(call: Call) -> web.Response:
    return await list_kind(
        call, "key", call.query, tenant_id=call.me.tenant_id, filters=("status", "user_id")
    )


@router.route(
    "GET",
    "/v1/api-keys/{id}",
    summary="One API key (never its secret)",
    action="iam:apikey:read",
    response=ApiKeyView,
    kind="key",
    tags=("api keys",),
)
async def get_api_key(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "key", "iam:apikey:read")
    )


@router.route(
    "POST",
    "/v1/api-keys/{id}/actions/revoke",
    summary="Revoke an API key",
    action="iam:apikey:delete",
    response=Revoked,
    status=202,
    kind="key",
    tags=("api keys",),
)
async def revoke_api_key(call: Call) -> web.Response:
    me = call.me
    key_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.revoke_api_key(unit, me, key_id)

    return call.accepted(await call.execute(decide, tenant_id=me.tenant_id))
