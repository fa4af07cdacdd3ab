"""What a projection is: tables of its own, fed batches of events in position order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import asyncpg

from gateways.eventstore.records import RecordedEvent


class Projection(Protocol):
    """A read model. ``apply`` runs inside the runner's transaction, with the checkpoint."""

    name: str
    """Stable key of its checkpoint; change it and the projection rebuilds."""
    schema: str
    """Where its tables live (the store's schema, or a scratch one for comparisons)."""
    # A projection may also set ``headers_only = True``: it is then fed events without
    # state, metadata or hash (read much faster), for read models of who/what/when only.

    def ddl(self) -> str:
        """CREATE ... IF NOT EXISTS statements for its tables."""
        ...

    def tables(self) -> Sequence[str]:
        """Its tables, schema-qualified, in the order a rebuild should empty them."""
        ...

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        """Fold one batch into the tables. Must be a pure function of the events."""
        ...


class Accumulator(Protocol):
    """An in-memory fold of many batches, written in one go."""

    def add(self, events: Sequence[RecordedEvent]) -> None:
        """Fold events in position order; no I/O."""
        ...

    async def write(self, conn: asyncpg.Connection) -> None:
        """Write everything folded so far."""
        ...


@runtime_checkable
class Rebuildable(Projection, Protocol):
    """A projection that can fold its whole history in memory, starting from empty tables.

    Rebuilds then write each row once, in one transaction (so readers see the old tables
    until the new ones are complete), instead of once per batch that touched it.
    """

    def accumulator(self) -> Accumulator: ...
