"""Aggregates in and out of the event store, through the library's mapper."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from eventsourcing.domain import BaseAggregate, CanMutateAggregate
from eventsourcing.persistence import Mapper, StoredEvent

from domain.aggregate import Snapshot
from domain.errors import NotFound
from domain.metadata import CommandContext
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, AppendResult, NewEvent
from gateways.eventstore.schema import SNAPSHOT_TOPIC
from gateways.eventstore.transcoder import MsgspecTranscoder

A = TypeVar("A", bound=BaseAggregate[Any])
log = logging.getLogger(__name__)


SNAPSHOT_EVERY = 50
"""Events between snapshots: long streams (a tenant's quota ledger, a busy host) load from
their latest snapshot plus what followed it, not from their first event."""


class Repository:
    """Loads aggregates by replaying their events; saves their pending events."""

    def __init__(self, store: PostgresEventStore, *, snapshot_every: int = SNAPSHOT_EVERY) -> None:
        self.store = store
        self.transcoder = MsgspecTranscoder()
        self.mapper: Mapper[str] = Mapper(transcoder=self.transcoder)
        self.snapshot_every = snapshot_every

    async def get(self, aggregate_id: str, kind: type[A]) -> A:
        start: Any = None
        snapshot, events = await self.store.read_latest(aggregate_id)
        if snapshot is not None:
            start = self._thaw(aggregate_id, *snapshot)
        if start is None and not events:
            raise NotFound(f"{aggregate_id} does not exist", resource_id=aggregate_id)
        aggregate = start
        for event in events:
            domain_event = self.mapper.to_domain_event(
                StoredEvent(event.originator_id, event.originator_version, event.topic, event.state)
            )
            aggregate = domain_event.mutate(aggregate)  # type: ignore[attr-defined]
        if not isinstance(aggregate, kind):
            raise NotFound(f"{aggregate_id} is not a {kind.__name__}", resource_id=aggregate_id)
        return aggregate

    async def as_of(self, aggregate_id: str, moment: datetime) -> Any:
        """The aggregate as it was at ``moment`` (events recorded by then), or None."""
        events = [e for e in await self.store.read_stream(aggregate_id) if e.recorded_at <= moment]
        if not events:
            return None
        return mutate_all(
            [
                self.mapper.to_domain_event(  # type: ignore[misc]
                    StoredEvent(e.originator_id, e.originator_version, e.topic, e.state)
                )
                for e in events
            ]
        )

    def to_new_events(
        self,
        context: CommandContext,
        *aggregates: BaseAggregate[Any],
        contexts: Mapping[tuple[str, int], CommandContext] | None = None,
    ) -> tuple[NewEvent, ...]:
        """``contexts`` gives some events (by aggregate id and version) a context of their own."""
        new_events: list[NewEvent] = []
        for aggregate in aggregates:
            for domain_event in aggregate.collect_events():
                stored = self.mapper.to_stored_event(domain_event)
                own = context
                if contexts:
                    key = (str(stored.originator_id), stored.originator_version)
                    own = contexts.get(key, context)
                new_events.append(
                    NewEvent(
                        str(stored.originator_id),
                        stored.originator_version,
                        stored.topic,
                        stored.state,
                        own.metadata(),
                    )
                )
        return tuple(new_events)

    async def save(
        self,
        context: CommandContext,
        *aggregates: BaseAggregate[Any],
        result: bytes = b"",
        contexts: Mapping[tuple[str, int], CommandContext] | None = None,
    ) -> AppendResult:
        """Append every pending event of ``aggregates`` as one command, atomically."""
        due = [a for a in aggregates if self._snapshot_due(a)]
        appended = await self.store.append(
            AppendRequest(
                events=self.to_new_events(context, *aggregates, contexts=contexts),
                command_id=context.command_id,
                fingerprint=context.fingerprint,
                result=result,
            )
        )
        if not appended.replayed:
            for aggregate in due:
                await self._snapshot(aggregate)
        return appended

    def _thaw(self, aggregate_id: str, version: int, topic: str, state: bytes) -> Any:
        if topic == SNAPSHOT_TOPIC:
            taken = self.mapper.to_domain_event(StoredEvent(aggregate_id, version, topic, state))
            return taken.mutate(None)  # type: ignore[attr-defined]
        # Written before snapshots took the library's form: the aggregate's own topic and
        # state (ensure_schema drops these; one may still come from an older process).
        return Snapshot(
            originator_id=aggregate_id,
            originator_version=version,
            timestamp=Snapshot.create_timestamp(),
            topic=topic,
            state=self.transcoder.decode(state),
        ).mutate(None)

    async def _snapshot(self, aggregate: BaseAggregate[Any]) -> None:
        # Only an optimisation: the command has committed, so a snapshot that cannot be
        # written must not turn its success into an error.
        try:
            # The library's own form (its mapper, the Snapshot event's topic, the taken
            # state inside), so that a stock Application with snapshotting on reads it.
            stored = self.mapper.to_stored_event(Snapshot.take(aggregate))
            await self.store.write_snapshot(
                aggregate.id, stored.originator_version, stored.topic, stored.state
            )
        except Exception:
            log.warning("no snapshot of %s at v%d", aggregate.id, aggregate.version, exc_info=True)

    def _snapshot_due(self, aggregate: BaseAggregate[Any]) -> bool:
        """Whether this save crosses a multiple of ``snapshot_every`` (decided before saving:
        collecting the pending events empties the list)."""
        pending = len(aggregate.pending_events)
        if pending == 0:
            return False
        before = aggregate.version - pending
        return aggregate.version // self.snapshot_every > before // self.snapshot_every


def mutate_all(events: list[CanMutateAggregate[str]]) -> Any:
    """Fold events into an aggregate (None before the first)."""
    return functools.reduce(lambda state, e: e.mutate(state), events, None)
