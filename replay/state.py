"""``state RESOURCE --at TIME``: an aggregate as it was at a moment, replayed from its events."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any, Literal

import msgspec

from gateways.eventstore.records import RecordedEvent
from replay.aggregates import describe, envelope_of, fold, to_builtins
from replay.errors import Problem
from replay.source import EventSource

Clock = Literal["recorded", "occurred"]


class StateAt(msgspec.Struct, kw_only=True):
    resource_id: str
    type: str
    at: datetime
    clock: Clock
    """Which time was compared with ``at``: the store's commit time or the command's."""
    version: int
    position: int
    changed_at: datetime
    """When the last event applied was recorded."""
    later_events: int
    """Events of the resource after ``at`` (the source may hold more history than shown)."""
    state: dict[str, Any]


def event_time(event: RecordedEvent, clock: Clock) -> datetime:
    if clock == "occurred":
        envelope = envelope_of(event)
        if envelope is not None:
            return envelope.occurred_at
    return event.recorded_at


async def state_at(
    source: EventSource, resource_id: str, at: datetime, clock: Clock = "recorded"
) -> StateAt:
    events = await source.read_stream(resource_id)
    if not events:
        raise Problem(f"unknown resource {resource_id!r}: {source.description} has no events of it")
    applied = list(itertools.takewhile(lambda e: event_time(e, clock) <= at, events))
    if not applied:
        first = event_time(events[0], clock).isoformat()
        raise Problem(f"{resource_id} did not exist yet at {at.isoformat()} (created {first})")
    aggregate = fold(applied)
    last = applied[-1]
    return StateAt(
        resource_id=resource_id,
        type=type(aggregate).__name__,
        at=at,
        clock=clock,
        version=last.originator_version,
        position=last.position,
        changed_at=last.recorded_at,
        later_events=len(events) - len(applied),
        state=to_builtins(describe(aggregate)),
    )


def render(found: StateAt) -> str:
    return msgspec.json.format(msgspec.json.encode(found, order="sorted"), indent=2).decode()
