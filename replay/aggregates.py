"""Events back into aggregates, through the same library mapper the platform writes with."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import Mapper, StoredEvent

from domain.metadata import EventMetadata
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.repository import mutate_all
from gateways.eventstore.transcoder import MsgspecTranscoder
from replay.errors import Problem

OPERATION_TOPIC = "domain.operations.operation:Operation."

_mapper: Mapper[str] = Mapper(transcoder=MsgspecTranscoder())


def event_name(topic: str) -> str:
    """``domain.identity.role:Role.ActionsChanged`` → ``Role.ActionsChanged``."""
    return topic.rpartition(":")[2]


def envelope_of(event: RecordedEvent) -> EventMetadata | None:
    """The event's metadata, or None for events written without it (by the stock library)."""
    if not event.metadata:
        return None
    try:
        return event.envelope()
    except msgspec.DecodeError:
        return None


def fold(events: Sequence[RecordedEvent]) -> BaseAggregate[str]:
    """Replay one aggregate's events (versions 1..n, in order) into the aggregate."""
    if not events:
        raise Problem("no events to fold")
    first = events[0]
    if first.originator_version != 1:
        raise Problem(
            f"this source holds {first.originator_id} from version "
            f"{first.originator_version} only; its earlier events are missing "
            "(an export holds only events carrying the tenant's id: try --complete-streams)"
        )
    try:
        domain_events = [
            _mapper.to_domain_event(
                StoredEvent(e.originator_id, e.originator_version, e.topic, e.state)
            )
            for e in events
        ]
        aggregate = mutate_all(domain_events)  # type: ignore[arg-type]
    except Exception as error:  # unknown topics, undecodable state: say which and stop
        raise Problem(f"cannot replay {first.originator_id}: {error!r}") from error
    if not isinstance(aggregate, BaseAggregate):
        raise Problem(f"{first.originator_id} does not replay into an aggregate")
    return aggregate


def apply(aggregate: BaseAggregate[str] | None, event: RecordedEvent) -> BaseAggregate[str]:
    """One more event onto an aggregate (None before its first), for incremental folds."""
    domain_event = _mapper.to_domain_event(
        StoredEvent(event.originator_id, event.originator_version, event.topic, event.state)
    )
    mutated = domain_event.mutate(aggregate)  # type: ignore[attr-defined]
    if not isinstance(mutated, BaseAggregate):
        raise Problem(f"{event.originator_id} v{event.originator_version} ends its aggregate")
    return mutated


def describe(aggregate: BaseAggregate[str]) -> dict[str, Any]:
    """The aggregate's ``view()`` if it has one, else its public attributes."""
    view = getattr(aggregate, "view", None)
    if callable(view):
        described = view()
        if isinstance(described, dict):
            return described
    return {
        "id": aggregate.id,
        **{
            name: value
            for name, value in vars(aggregate).items()
            if not name.startswith("_") and not callable(value)
        },
    }


def to_builtins(value: Any) -> Any:
    """Plain JSON-able values (datetimes as ISO text, anything unknown as its ``str``)."""
    return msgspec.to_builtins(value, enc_hook=_fallback)


def _fallback(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
