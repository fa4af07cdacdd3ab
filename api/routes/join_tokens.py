"""Join tokens: an admin lets one host daemon join a cluster; the secret is shown once."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import ListQuery, list_kind
from api.routes.hosts import ClusterId, Hostname
from api.routing import Router
from api.services import host_registration
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain.inventory.join_token import MAX_TTL_SECONDS, MIN_TTL_SECONDS

router = Router()

TokenStatus = Literal["active", "used", "revoked"]


class IssueJoinToken(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    expires_in_seconds: Annotated[int, msgspec.Meta(ge=MIN_TTL_SECONDS, le=MAX_TTL_SECONDS)] = 3600
    """How long the token may be used (it is used once)."""
    hostname: Hostname | None = None
    """Only this host may join with it; a host of that name already in the cluster is
    bound again (a reinstalled machine). Omit to let any new hostname join."""


class IssuedJoinToken(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str
    position: int
    token_id: str
    cluster_id: str
    expires_at: str
    join_token: str | None = None
    """Give it to the host: ``scloud hostd --join-token …`` (or ``SCLOUD_HOST_JOIN_TOKEN``).
    Shown once, never stored (only its SHA-256 is): a repeat of the request (same
    Idempotency-Key) answers without it."""


class JoinTokenView(msgspec.Struct, kw_only=True):
    id: str
    cluster_id: str
    region_id: str
    hostname: str | None
    expires_at: str
    status: TokenStatus
    """``active`` until used or revoked (past ``expires_at`` it is refused all the same)."""
    host_id: str | None
    """The host that joined with it."""
    used_at: str | None


class JoinTokenPage(msgspec.Struct, kw_only=True):
    items: list[JoinTokenView]
    next_page_token: str | None


class JoinTokenQuery(ListQuery, kw_only=True):
    cluster_id: ClusterId | None = None
    status: TokenStatus | None = None


class RevokedJoinToken(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str | None
    position: int


@router.route(
    "POST",
    "/v1/admin/clusters/{id}/join-tokens",
    summary="Issue a single-use join token for a host to register in this cluster",
    action="admin:host:create",
    body=IssueJoinToken,
    response=IssuedJoinToken,
    status=202,
    kind="cls",
    tags=("hosts",),
)
async def issue_join_token(call: Call) -> web.Response:
    body: IssueJoinToken = call.body
    cluster_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await host_registration.issue_join_token(
            unit, cluster_id, body.expires_in_seconds, body.hostname
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/admin/join-tokens",
    summary="List join tokens (never their secrets)",
    action="admin:host:read",
    query=JoinTokenQuery,
    response=JoinTokenPage,
    tags=("hosts",),
)
async def list_join_tokens(call: Call) -> web.Response:
    return await list_kind(
        call, "jtk", call.query, tenant_id=None, filters=("cluster_id", "status")
    )


@router.route(
    "GET",
    "/v1/admin/join-tokens/{id}",
    summary="One join token (never its secret)",
    action="admin:host:read",
    response=JoinTokenView,
    kind="jtk",
    tags=("hosts",),
)
async def get_join_token(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "jtk", "admin:host:read")
    )


@router.route(
    "POST",
    "/v1/admin/join-tokens/{id}/actions/revoke",
    summary="Revoke an unused join token",
    action="admin:host:update",
    response=RevokedJoinToken,
    status=202,
    kind="jtk",
    tags=("hosts",),
)
async def revoke_join_token(call: Call) -> web.Response:
    token_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await host_registration.revoke_join_token(unit, token_id)

    return call.accepted(await call.execute(decide, tenant_id=None))
