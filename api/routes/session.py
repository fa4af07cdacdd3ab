"""Signing in, and who the caller is."""

from __future__ import annotations

import functools
import secrets

import msgspec
from aiohttp import web

from api.auth import Unauthenticated, principal_for
from api.call import Call, json_response
from api.routing import Router
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from gateways.passwords import hash_password, verify_password

router = Router()


class Login(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: str
    password: str


class Session(msgspec.Struct, kw_only=True):
    token: str
    token_type: str
    expires_at: int
    user_id: str
    tenant_id: str | None


class Me(msgspec.Struct, kw_only=True):
    user_id: str
    tenant_id: str | None
    roles: list[str]
    projects: list[str] | None
    api_key_id: str | None
    tenant_frozen: bool


@router.route(
    "POST",
    "/v1/auth/login",
    summary="Sign in with e-mail and password",
    action=None,
    public=True,
    body=Login,
    response=Session,
    status=200,
    tags=("session",),
)
async def login(call: Call) -> web.Response:
    body: Login = call.body
    cache = call.platform.identity
    user_id = cache.user_by_email.get(body.email.strip().lower())
    user = cache.user(user_id) if user_id else None
    # Verify even for unknown users, so timing does not tell which addresses exist.
    stored = user.password_hash if user is not None else _dummy_hash()
    valid = verify_password(stored, body.password)
    if user is None or not valid or user.disabled:
        await call.audit_denial(Unauthenticated("wrong e-mail or password"))
        raise Unauthenticated("wrong e-mail or password")
    call.principal = principal_for(user, cache)
    token, claims = call.platform.tokens.issue(
        user.id, user.token_generation, call.platform.settings.token_ttl_seconds
    )

    async def signed_in(_: UnitOfWork) -> Decided:
        return Decided(resource_id=user.id)

    await call.execute(signed_in, tenant_id=user.tenant_id, action="iam:session:create")
    return json_response(
        Session(
            token=token,
            token_type="Bearer",  # noqa: S106 - the scheme's name, not a secret
            expires_at=claims.expires_at,
            user_id=user.id,
            tenant_id=user.tenant_id,
        )
    )


@router.route(
    "GET",
    "/v1/me",
    summary="The signed-in caller and what it may do",
    action=None,
    response=Me,
    tags=("session",),
)
async def me(call: Call) -> web.Response:
    principal = call.me
    return json_response(
        Me(
            user_id=principal.user_id,
            tenant_id=principal.tenant_id,
            roles=list(principal.roles),
            projects=None if principal.projects is None else list(principal.projects),
            api_key_id=principal.api_key_id,
            tenant_frozen=principal.tenant_frozen,
        )
    )


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_hex(16))
