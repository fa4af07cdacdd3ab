"""A command's working set: the aggregates it read and the ones it made, saved together."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar

from eventsourcing.domain import BaseAggregate

from domain.errors import DomainError, NotFound
from domain.metadata import CommandContext
from gateways.eventstore.repository import Repository

A = TypeVar("A", bound=BaseAggregate[Any])


class PreconditionFailed(DomainError):
    """``If-Match`` named another version than the resource has."""

    code = "precondition_failed"
    status = 412


def other_tenants(resource_id: str) -> NotFound:
    """The caller named another tenant's resource: answer exactly as for a missing one.

    The flag in its context lets the API edge record the attempt as a denial, for platform
    staff only.
    """
    return NotFound(f"{resource_id} does not exist", resource_id=resource_id, other_tenants=True)


class UnitOfWork:
    def __init__(self, repository: Repository, if_match: int | None = None) -> None:
        self.repository = repository
        self.if_match = if_match
        self.aggregates: dict[str, BaseAggregate[Any]] = {}
        self.contexts: dict[tuple[str, int], CommandContext] = {}
        """Events (aggregate id, version) recorded under another context than the command's."""

    async def get(self, aggregate_id: str, kind: type[A], *, checked: bool = False) -> A:
        """Load an aggregate once per command; ``checked`` applies the caller's If-Match."""
        found = self.aggregates.get(aggregate_id)
        if found is None:
            found = await self.repository.get(aggregate_id, kind)
            self.aggregates[aggregate_id] = found
        if not isinstance(found, kind):
            raise NotFound(f"{aggregate_id} is not a {kind.__name__}", resource_id=aggregate_id)
        if checked and self.if_match is not None and found.version != self.if_match:
            raise PreconditionFailed(
                f"{aggregate_id} is at version {found.version}, not {self.if_match}",
                resource_id=aggregate_id,
            )
        return found

    async def find(self, aggregate_id: str, kind: type[A]) -> A | None:
        try:
            return await self.get(aggregate_id, kind)
        except NotFound:
            return None

    def add(self, aggregate: BaseAggregate[Any]) -> None:
        self.aggregates[aggregate.id] = aggregate

    @contextlib.contextmanager
    def acting_as(self, context: CommandContext) -> Iterator[None]:
        """Events made inside are recorded under ``context`` instead of the command's own.

        A command that changes another tenant's resource (a preemption) records those
        events as that tenant's, by a system actor: they reach that tenant's event stream
        and audit log, and none of them reaches the caller's.
        """
        before = {key: a.version for key, a in self.aggregates.items()}
        yield
        for key, aggregate in self.aggregates.items():
            for pending in aggregate.pending_events:
                if pending.originator_version > before.get(key, 0):
                    self.contexts[(key, pending.originator_version)] = context

    def changed(self) -> list[BaseAggregate[Any]]:
        return [a for a in self.aggregates.values() if a.pending_events]
