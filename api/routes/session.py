"""Signing in, and who the caller is."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from datetime import timedelta

import msgspec
from aiohttp import web

from api.auth import Unauthenticated, principal_for
from api.call import Call, json_response
from api.problems import REQUEST_ID, problem_response
from api.routing import Router
from api.services import identity
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.errors import DomainError
from domain.identity.login_throttle import LOCKOUT_SECONDS
from domain.identity.user import User
from domain.metadata import Actor, CommandContext
from domain.settings.global_config import DEFAULTS
from gateways.passwords import hash_off_loop, verify_off_loop

router = Router()
log = logging.getLogger(__name__)
_WRONG = "wrong e-mail or password"
_THROTTLED = "too many failed sign-ins for this account or from this address; retry later"


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
async def login(call: Call) -> web.StreamResponse:
    body: Login = call.body
    cache = call.platform.identity
    throttle = call.platform.login_throttle
    email = body.email.strip().lower()
    now = time.monotonic()
    user_id = cache.user_by_email.get(email)
    user = cache.user(user_id) if user_id else None
    tenant_id = user.tenant_id if user is not None else None
    # A new password (a reset) starts the count afresh: it is counted per generation.
    account = email if user is None else f"{email}#{user.token_generation}"
    wait = throttle.retry_after(account, call.source, now)
    if user is not None and user.locked_until is not None:
        # A lock recorded by any API process, this one before a restart included.
        wait = max(wait, (user.locked_until - clock.now()).total_seconds())
    if wait > 0:
        # Refused before the hash is even checked: guessing costs the guesser, not our CPU.
        await call.audit_denial(TooManyAttempts(_THROTTLED), user_id, tenant_id=tenant_id)
        return _throttled(call, wait)
    # Verify even for unknown users, so timing does not tell which addresses exist.
    stored = user.password_hash if user is not None else await _dummy_hash()
    valid = await verify_off_loop(stored, body.password)
    if user is None or not valid or user.disabled:
        policy = cache.config()
        threshold = DEFAULTS["lockout_threshold"] if policy is None else policy.lockout_threshold
        if throttle.failed(account, call.source, now, threshold) and user is not None:
            _record_lockout(call, user)
        # Under the account aimed at, so its tenant's audit log shows the attempts on it.
        await call.audit_denial(Unauthenticated(_WRONG), user_id, tenant_id=tenant_id)
        raise Unauthenticated(_WRONG)
    throttle.succeeded(account)
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
    action="self:session:read",
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


_recording: set[asyncio.Task[None]] = set()


def _record_lockout(call: Call, user: User) -> None:
    """Append the lock in the background: the answer takes no longer for a real account."""
    until = clock.now() + timedelta(seconds=LOCKOUT_SECONDS)
    context = CommandContext(
        actor=Actor.system("sign-in"),
        tenant_id=user.tenant_id,
        request_id=call.request.get(REQUEST_ID),
        source=call.source,
    )
    executor = call.platform.executor

    async def decide(unit: UnitOfWork) -> Decided:
        return await identity.lock_out(unit, user.id, until)

    async def record() -> None:
        try:
            await executor.run(context, "iam:user:lock", decide)
        except Exception as error:  # the lock still holds in this process's memory
            log.warning("recording the sign-in lock of %s: %s", user.id, error)

    task = asyncio.create_task(record())
    _recording.add(task)
    task.add_done_callback(_recording.discard)


class TooManyAttempts(DomainError):
    code = "too_many_attempts"
    status = 429


def _throttled(call: Call, wait: float) -> web.Response:
    response = problem_response(
        call.request, TooManyAttempts.status, TooManyAttempts.code, "TooManyAttempts", _THROTTLED
    )
    response.headers["Retry-After"] = str(math.ceil(wait))
    return response


_dummy: list[str] = []


async def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(await hash_off_loop(secrets.token_hex(16)))
    return _dummy[0]
