"""Aggregates in and out of the event store, through the library's mapper."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any, TypeVar

from eventsourcing.domain import BaseAggregate, CanMutateAggregate
from eventsourcing.persistence import Mapper, StoredEvent

from domain.errors import NotFound
from domain.metadata import CommandContext
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, AppendResult, NewEvent
from gateways.eventstore.transcoder import MsgspecTranscoder

A = TypeVar("A", bound=BaseAggregate[Any])


class Repository:
    """Loads aggregates by replaying their events; saves their pending events."""

    def __init__(self, store: PostgresEventStore) -> None:
        self.store = store
        self.mapper: Mapper[str] = Mapper(transcoder=MsgspecTranscoder())

    async def get(self, aggregate_id: str, kind: type[A]) -> A:
        events = await self.store.read_stream(aggregate_id)
        if not events:
            raise NotFound(f"{aggregate_id} does not exist", resource_id=aggregate_id)
        domain_events = [
            self.mapper.to_domain_event(
                StoredEvent(e.originator_id, e.originator_version, e.topic, e.state)
            )
            for e in events
        ]
        aggregate = mutate_all(domain_events)  # type: ignore[arg-type]
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
        self, context: CommandContext, *aggregates: BaseAggregate[Any]
    ) -> tuple[NewEvent, ...]:
        new_events: list[NewEvent] = []
        for aggregate in aggregates:
            for domain_event in aggregate.collect_events():
                stored = self.mapper.to_stored_event(domain_event)
                new_events.append(
                    NewEvent(
                        str(stored.originator_id),
                        stored.originator_version,
                        stored.topic,
                        stored.state,
                        context.metadata(),
                    )
                )
        return tuple(new_events)

    async def save(
        self, context: CommandContext, *aggregates: BaseAggregate[Any], result: bytes = b""
    ) -> AppendResult:
        """Append every pending event of ``aggregates`` as one command, atomically."""
        return await self.store.append(
            AppendRequest(
                events=self.to_new_events(context, *aggregates),
                command_id=context.command_id,
                fingerprint=context.fingerprint,
                result=result,
            )
        )


def mutate_all(events: list[CanMutateAggregate[str]]) -> Any:
    """Fold events into an aggregate (None before the first)."""
    return functools.reduce(lambda state, e: e.mutate(state), events, None)
