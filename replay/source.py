"""Where replay reads events from: the live PostgreSQL store or a SQLite export, read-only.

Both implementations pass one contract suite (tests/replay/test_source_contract.py), so
every command runs unchanged on a backup, an export, or the live database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Literal, Protocol

from gateways.eventstore.records import RecordedEvent

MAX_POSITION = 2**62

LinkField = Literal["request_id", "command_id", "correlation_id", "causation_id", "event_id"]
LINK_FIELDS: tuple[LinkField, ...] = (
    "request_id",
    "command_id",
    "correlation_id",
    "causation_id",
    "event_id",
)


class EventSource(Protocol):
    """Events in position order, and the few lookups the replay commands need."""

    description: str
    """Where the events come from, for messages (never a password)."""
    complete: bool
    """True when the source holds every event of the store, so the chain runs unbroken."""
    redacted: frozenset[int]
    """Positions whose secret fields an export redacted: their links cannot be checked."""

    async def head(self) -> int:
        """The highest position held (0 when empty)."""
        ...

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        until: int = MAX_POSITION,
        tenant_id: str | None = None,
        topic_prefix: str | None = None,
        topic_contains: str | None = None,
    ) -> list[RecordedEvent]:
        """Events with ``after < position <= until`` matching every filter given."""
        ...

    async def read_stream(self, originator_id: str) -> list[RecordedEvent]:
        """One aggregate's events by version; empty when the source has none."""
        ...

    async def read_linked(self, links: Mapping[LinkField, Sequence[str]]) -> list[RecordedEvent]:
        """Events whose envelope has any of the given values in the given field."""
        ...

    async def previous_hashes(self, positions: Sequence[int]) -> dict[int, bytes]:
        """The chain hash of the event just before each position in the whole store."""
        ...

    async def close(self) -> None: ...


async def batches(
    source: EventSource,
    *,
    batch_size: int = 5000,
    on_batch: Callable[[int, int], None] | None = None,
    tenant_id: str | None = None,
    topic_prefix: str | None = None,
    topic_contains: str | None = None,
) -> AsyncIterator[list[RecordedEvent]]:
    """Every matching event in position order, a batch at a time.

    ``on_batch(position reached, events so far)`` runs after each batch (for progress bars).
    """
    after, seen = 0, 0
    while batch := await source.read_all(
        after=after,
        limit=batch_size,
        tenant_id=tenant_id,
        topic_prefix=topic_prefix,
        topic_contains=topic_contains,
    ):
        after = batch[-1].position
        seen += len(batch)
        yield batch
        if on_batch is not None:
            on_batch(after, seen)
