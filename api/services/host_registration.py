"""Join tokens and host registration: an admin issues a token, a host daemon joins with it.

The admin's side is two commands (issue, revoke). The host's side is a NATS request on
``hosts.register`` answered by ``HostRegistrar``: the token is checked against the store
and, in one append, marked used while the host is registered in the token's cluster (or,
for a token naming a hostname already registered there, bound to that host). A refused
token is answered with its reason and recorded as a denied operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta

from nats.aio.client import Client
from nats.aio.msg import Msg

from api.services.executor import CommandExecutor, CommandFailed, Decided
from api.services.inventory import HOSTNAMES, claim_name
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.errors import DomainError, ValidationFailed
from domain.ids import is_id
from domain.inventory.cluster import Cluster
from domain.inventory.host import Host
from domain.inventory.join_token import (
    MAX_TTL_SECONDS,
    MIN_TTL_SECONDS,
    JoinRefused,
    JoinToken,
    JoinTokenInvalid,
)
from domain.inventory.name_claim import NameClaim, claim_id
from domain.metadata import Actor, ActorKind, CommandContext
from gateways.bus import registration
from gateways.bus.registration import RegisterReply, RegisterRequest
from gateways.tokens import hash_secret, new_key_secret

log = logging.getLogger(__name__)

JOIN_ACTION = "admin:host:join"
"""The action of a host's registration in the audit log (a host, not a user, asks)."""


# -- the admin's commands -----------------------------------------------------------------


async def issue_join_token(
    unit: UnitOfWork, cluster_id: str, expires_in_seconds: int, hostname: str | None
) -> Decided:
    cluster = await unit.get(cluster_id, Cluster, checked=True)  # If-Match: the cluster's
    if not MIN_TTL_SECONDS <= expires_in_seconds <= MAX_TTL_SECONDS:
        raise ValidationFailed(
            f"expires_in_seconds runs from {MIN_TTL_SECONDS} to {MAX_TTL_SECONDS}",
            field="expires_in_seconds",
        )
    secret = new_key_secret()
    expires_at = clock.now() + timedelta(seconds=expires_in_seconds)
    token = JoinToken.issue(cluster, hash_secret(secret), expires_at, hostname)
    unit.add(token)
    return Decided(
        resource_id=token.id,
        body={"token_id": token.id, "cluster_id": cluster.id, "expires_at": expires_at.isoformat()},
        secrets={"join_token": registration.join_token(token.id, secret)},
    )


async def revoke_join_token(unit: UnitOfWork, token_id: str) -> Decided:
    token = await unit.get(token_id, JoinToken, checked=True)
    token.revoke()
    return Decided(resource_id=token.id)


# -- the host's request -------------------------------------------------------------------


class _Refused(Exception):
    """Raised out of a registration's decision: recorded as denied, not as failed."""

    def __init__(self, error: JoinRefused) -> None:
        super().__init__(error.detail)
        self.error = error


async def join(
    unit: UnitOfWork,
    token_id: str,
    secret: str,
    hostname: str,
    capacity: Mapping[str, int],
    gpus: Sequence[Mapping[str, str]],
) -> Decided:
    """Check the token, spend it and register (or bind) the host: one append."""
    token = await unit.find(token_id, JoinToken)
    if token is None:
        raise _Refused(JoinTokenInvalid("the join token is not valid"))
    now = clock.now()
    refusal = token.refusal(hash_secret(secret), hostname, now)
    if refusal is not None:
        raise _Refused(refusal)
    cluster = await unit.get(token.cluster_id, Cluster)
    host = await _bound_host(unit, token, hostname)
    if host is None:
        host = Host.register(cluster, hostname, capacity, {}, gpus)
        await claim_name(unit, HOSTNAMES, hostname, host.id)
        unit.add(host)
    else:
        host.change_capacity(capacity)
        host.change_gpus(gpus)
    token.use(host.id, hostname, now)
    return Decided(
        resource_id=host.id,
        body={"host_id": host.id, "cluster_id": cluster.id, "token_id": token.id},
    )


async def _bound_host(unit: UnitOfWork, token: JoinToken, hostname: str) -> Host | None:
    """The host a token for this very hostname re-joins: registered in the token's cluster.

    Only a token that names the hostname binds: one for any host never takes over a host
    already registered (its hostname is then in use, and the join fails).
    """
    if token.hostname is None:
        return None
    claim = await unit.find(claim_id(HOSTNAMES, hostname), NameClaim)
    if claim is None or claim.owner_id is None:
        return None
    host = await unit.find(claim.owner_id, Host)
    return host if host is not None and host.cluster_id == token.cluster_id else None


def _refused(error: DomainError, operation_id: str | None = None) -> RegisterReply:
    return RegisterReply(ok=False, code=error.code, reason=error.detail, operation_id=operation_id)


async def register(executor: CommandExecutor, request: RegisterRequest) -> RegisterReply:
    """Answer one host's registration request; every refusal is in the audit log."""
    parts = registration.split_token(request.token)
    token_id = parts[0] if parts is not None and is_id(parts[0], "jtk") else None
    hostname = request.hostname[:253]
    context = CommandContext(
        actor=Actor(ActorKind.HOST, hostname or "unknown", via=token_id),
        command_id=None if token_id is None else f"host-join:{token_id}:{request.request_id[:100]}",
        fingerprint=hashlib.sha256(registration.encode(request)).digest(),
        request_id=request.request_id[:100],
    )
    if parts is None or token_id is None:
        error = JoinTokenInvalid("the join token is not valid")
        outcome = await executor.deny(context, JOIN_ACTION, None, None, error)
        return _refused(error, outcome.operation_id)
    secret = parts[1]
    gpus = [{"address": gpu.address, "model": gpu.model} for gpu in request.gpus]

    async def decide(unit: UnitOfWork) -> Decided:
        return await join(unit, token_id, secret, hostname, request.capacity, gpus)

    try:
        outcome = await executor.run(context, JOIN_ACTION, decide, target=token_id)
    except _Refused as refused:
        denied = await executor.deny(context, JOIN_ACTION, token_id, None, refused.error)
        return _refused(refused.error, denied.operation_id)
    except CommandFailed as failed:  # a bad capacity, a hostname in use: recorded as failed
        return _refused(failed.error, failed.outcome.operation_id)
    except DomainError as error:  # a conflict that outlasted the retries, a repeat in flight
        return _refused(error)
    return RegisterReply(
        ok=True,
        host_id=str(outcome.body.get("host_id", outcome.resource_id)),
        cluster_id=str(outcome.body.get("cluster_id")),
        operation_id=outcome.operation_id,
    )


class HostRegistrar:
    """Answers ``hosts.register`` requests, in a queue group shared by every worker."""

    def __init__(
        self,
        executor: CommandExecutor,
        nc: Client,
        subject: str = registration.REGISTER_SUBJECT,
    ) -> None:
        self.executor = executor
        self.nc = nc
        self.subject = subject
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        subscription = await self.nc.subscribe(
            self.subject, queue=registration.QUEUE_GROUP, cb=self._received
        )
        try:
            await stop.wait()
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _received(self, message: Msg) -> None:
        task = asyncio.create_task(self._answer(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, message: Msg) -> None:
        try:
            request = registration.decode_request(message.data)
        except Exception:
            reply = RegisterReply(
                ok=False, code="invalid_request", reason="not a host registration request"
            )
        else:
            try:
                reply = await register(self.executor, request)
            except Exception as error:  # the store away: the host asks again
                log.warning("host registration of %r not answered: %s", request.hostname, error)
                reply = RegisterReply(ok=False, code="unavailable", reason=str(error))
        if message.reply:
            with contextlib.suppress(Exception):
                await message.respond(registration.encode(reply))
