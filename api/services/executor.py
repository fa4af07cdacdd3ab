"""Runs commands: decide on fresh state, append with the operation, retry on conflicts.

Every command, successful, failed or denied, leaves an Operation: that is what the
``202`` answer points at and what the audit log is made of.
"""

from __future__ import annotations

import asyncio
import random
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, cast

import msgspec

from api.services.unit_of_work import UnitOfWork
from domain.errors import Conflict, DomainError
from domain.metadata import CommandContext
from domain.operations.operation import DENIED, FAILED, SUCCEEDED, Operation
from gateways.eventstore.records import ConcurrencyConflict, IdempotencyKeyReused
from gateways.eventstore.repository import Repository

Decision = Callable[[UnitOfWork], Awaitable["Decided"]]
MAX_ATTEMPTS = 32
"""Tries of one command before a version conflict is answered (409 ``concurrency_conflict``)."""
BACKOFF_BASE = 0.002
BACKOFF_CAP = 0.064
"""Seconds: the pause after the n-th conflict is random in [0, min(cap, base * 2**(n-1))].
Waiting before all the retries is at most about 1.7 s, and half that on average."""


def backoff(conflicts: int) -> float:
    """Capped exponential backoff with full jitter.

    Full jitter spreads racers that lost to the same append apart, so that they do not
    collide again in lockstep; growing bounds make a crowd thin out instead of
    retrying at the rate it arrived.
    """
    bound = min(BACKOFF_CAP, BACKOFF_BASE * 2.0 ** max(conflicts - 1, 0))
    return random.uniform(0, bound)  # noqa: S311  (jitter, not security)


class Decided(msgspec.Struct, kw_only=True):
    """What a command decided: the resource it is about, and what to answer."""

    resource_id: str | None = None
    body: dict[str, Any] = {}
    """Extra fields for the answer; they are kept for answering a repeat."""
    secrets: dict[str, Any] = {}
    """Fields shown in this answer only (a new key's secret): never stored, so a repeat of
    the command answers without them."""


class Refusal(msgspec.Struct, kw_only=True):
    """How a refused command was answered, so that a repeat of it is answered the same."""

    title: str
    code: str
    status: int
    detail: str

    def error(self) -> DomainError:
        kind = cast(
            type[DomainError],
            type(self.title, (DomainError,), {"code": self.code, "status": self.status}),
        )
        return kind(self.detail)


class Outcome(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str | None
    position: int
    body: dict[str, Any] = {}
    replayed: bool = False
    refusal: Refusal | None = None


class IdempotencyKeyInUse(Conflict):
    code = "idempotency_key_in_use"


class CommandFailed(Exception):
    """The command was refused; its failed operation is recorded."""

    def __init__(self, error: DomainError, outcome: Outcome) -> None:
        super().__init__(error.detail)
        self.error = error
        self.outcome = outcome


_encode = msgspec.json.Encoder().encode
_decode_outcome = msgspec.json.Decoder(Outcome).decode


class CommandExecutor:
    def __init__(self, repository: Repository) -> None:
        self.repository = repository
        self._in_flight: set[str] = set()
        # Commands of one tenant mostly touch the same aggregates (its quota ledger above
        # all): running them one at a time per process turns a storm of version conflicts
        # into a queue. Conflicts with other processes are still retried.
        self._tenant_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def run(
        self,
        context: CommandContext,
        action: str,
        decide: Decision,
        *,
        source: str | None = None,
        if_match: int | None = None,
        target: str | None = None,
        tenant_queue: bool = True,
    ) -> Outcome:
        """Decide and append; a repeat of the command id answers what the first did.

        ``target`` is the resource the caller named, recorded on a refusal's operation so
        that the audit log finds failed attempts on a resource too. ``tenant_queue=False``
        lets a command that touches none of the tenant's shared aggregates (a host's
        outcome for one instance) skip the tenant's queue.
        """
        command_id = context.command_id
        if command_id is not None:
            earlier = await self.repository.store.find_command(command_id)
            if earlier is not None:
                last = earlier.positions[-1] if earlier.positions else 0
                return _refused_again(
                    self._replay(context, earlier.fingerprint, earlier.result, last)
                )
            if command_id in self._in_flight:
                raise IdempotencyKeyInUse("a request with this Idempotency-Key is still running")
            self._in_flight.add(command_id)
        try:
            if not tenant_queue:
                return await self._run(context, action, decide, source, if_match, target)
            lock = self._lock_for(context.tenant_id)
            async with lock:
                return await self._run(context, action, decide, source, if_match, target)
        finally:
            if command_id is not None:
                self._in_flight.discard(command_id)

    def _lock_for(self, tenant_id: str | None) -> asyncio.Lock:
        key = tenant_id or ""
        lock = self._tenant_locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._tenant_locks[key] = lock
        return lock

    async def _run(
        self,
        context: CommandContext,
        action: str,
        decide: Decision,
        source: str | None,
        if_match: int | None,
        target: str | None,
    ) -> Outcome:
        for attempt in range(MAX_ATTEMPTS):
            unit = UnitOfWork(self.repository, if_match)
            try:
                decided = await decide(unit)
            except DomainError as error:
                outcome = await self.record(context, action, target, source, FAILED, error)
                raise CommandFailed(error, outcome) from error
            operation = self._operation(context, action, decided.resource_id, source, SUCCEEDED)
            outcome = Outcome(
                operation_id=operation.id,
                resource_id=decided.resource_id,
                position=0,
                body=decided.body,
            )
            try:
                # Stored without the secrets: the command record must not keep them.
                appended = await self.repository.save(
                    context,
                    *unit.changed(),
                    operation,
                    result=_encode(outcome),
                    contexts=unit.contexts,
                )
            except ConcurrencyConflict as conflict:
                if attempt == MAX_ATTEMPTS - 1:
                    # Still a 409 with code ``concurrency_conflict`` at the API edge; nothing
                    # was recorded under the command id, so the same request may be retried.
                    raise ConcurrencyConflict(
                        f"{conflict.detail} (other commands kept changing it: gave up after "
                        f"{MAX_ATTEMPTS} attempts; retry the request)",
                        **conflict.context,
                    ) from conflict
                # Someone (another process) changed what we read: decide again on fresh
                # state, after a random pause that grows with each conflict.
                await asyncio.sleep(backoff(attempt + 1))
                continue
            if appended.replayed:
                return _refused_again(self._stored(appended.result, appended.last_position))
            outcome.position = appended.last_position
            outcome.body = {**outcome.body, **decided.secrets}
            return outcome
        raise AssertionError("unreachable")

    async def record(
        self,
        context: CommandContext,
        action: str,
        resource_id: str | None,
        source: str | None,
        status: str,
        error: DomainError,
    ) -> Outcome:
        """Append a refused command's operation (failed or denied), alone."""
        operation = self._operation(
            context, action, resource_id, source, status, error.code, error.detail
        )
        refusal = Refusal(
            title=type(error).__name__, code=error.code, status=error.status, detail=error.detail
        )
        outcome = Outcome(
            operation_id=operation.id, resource_id=resource_id, position=0, refusal=refusal
        )
        appended = await self.repository.save(context, operation, result=_encode(outcome))
        if appended.replayed:
            return self._stored(appended.result, appended.last_position)
        outcome.position = appended.last_position
        return outcome

    async def deny(
        self,
        context: CommandContext,
        action: str,
        resource_id: str | None,
        source: str | None,
        error: DomainError,
    ) -> Outcome:
        # A denial is recorded under no command id: a retried request is denied again.
        anonymous = msgspec.structs.replace(context, command_id=None, fingerprint=b"")
        return await self.record(anonymous, action, resource_id, source, DENIED, error)

    def _replay(
        self, context: CommandContext, fingerprint: bytes, result: bytes, position: int
    ) -> Outcome:
        if fingerprint != context.fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was used with a different request",
                command_id=context.command_id,
            )
        return self._stored(result, position)

    @staticmethod
    def _stored(result: bytes, position: int) -> Outcome:
        outcome = _decode_outcome(result)
        outcome.replayed = True
        outcome.position = outcome.position or position
        return outcome

    @staticmethod
    def _operation(
        context: CommandContext,
        action: str,
        resource_id: str | None,
        source: str | None,
        status: str,
        error_code: str | None = None,
        error_detail: str | None = None,
    ) -> Operation:
        return Operation(
            action=action,
            resource_id=resource_id,
            tenant_id=context.tenant_id,
            actor_id=context.actor.id,
            request_id=context.request_id,
            source=source,
            status=status,
            error_code=error_code,
            error_detail=error_detail,
        )


def _refused_again(outcome: Outcome) -> Outcome:
    """A repeat of a refused command is refused again, with the first answer's error."""
    if outcome.refusal is not None:
        raise CommandFailed(outcome.refusal.error(), outcome)
    return outcome
