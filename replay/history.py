"""``history RESOURCE``: each event of one resource with its causal chain.

For every event: the request and command that caused it, the Operation that recorded the
command, the other events the same command wrote, the event that caused it (when a saga
did), and what followed from it (host outcomes, charges, further steps), matched through
the request, command, correlation and causation ids in the envelopes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import msgspec

from domain.metadata import ActorKind, EventMetadata
from domain.operations.operation import Operation
from gateways.eventstore.records import RecordedEvent
from replay.aggregates import OPERATION_TOPIC, envelope_of, event_name, fold
from replay.errors import Problem
from replay.source import EventSource, LinkField


class Brief(msgspec.Struct, kw_only=True):
    """Another event, in one line."""

    position: int
    resource_id: str
    version: int
    event: str
    actor: str | None
    recorded_at: datetime


class OperationRef(msgspec.Struct, kw_only=True):
    operation_id: str
    action: str
    status: str
    error_code: str | None
    error_detail: str | None
    actor_id: str
    request_id: str | None


class Step(msgspec.Struct, kw_only=True):
    position: int
    version: int
    event: str
    recorded_at: datetime
    occurred_at: datetime | None
    actor: str | None
    event_id: str | None
    request_id: str | None
    command_id: str | None
    correlation_id: str | None
    causation_id: str | None
    caused_by: Brief | None = None
    operations: list[OperationRef] = []
    same_command: list[Brief] = []
    host_outcomes: list[Brief] = []
    charges: list[Brief] = []
    followed_by: list[Brief] = []


class ResourceHistory(msgspec.Struct, kw_only=True):
    resource_id: str
    source: str
    steps: list[Step]


def actor_of(envelope: EventMetadata | None) -> str | None:
    if envelope is None:
        return None
    via = f" via {envelope.actor.via}" if envelope.actor.via else ""
    return f"{envelope.actor.kind}:{envelope.actor.id}{via}"


def brief(event: RecordedEvent) -> Brief:
    return Brief(
        position=event.position,
        resource_id=event.originator_id,
        version=event.originator_version,
        event=event_name(event.topic),
        actor=actor_of(envelope_of(event)),
        recorded_at=event.recorded_at,
    )


def is_charge(event: RecordedEvent) -> bool:
    """Billing's events: any whose class or name speaks of a charge (``ChargePosted``…)."""
    return "Charge" in event_name(event.topic)


async def resource_history(source: EventSource, resource_id: str) -> ResourceHistory:
    stream = await source.read_stream(resource_id)
    if not stream:
        raise Problem(f"unknown resource {resource_id!r}: {source.description} has no events of it")
    envelopes = [envelope_of(e) for e in stream]
    related = await source.read_linked(_links(envelopes))
    operations = await _operations(source, related)
    steps = [
        _step(event, envelope, related, operations)
        for event, envelope in zip(stream, envelopes, strict=True)
    ]
    return ResourceHistory(resource_id=resource_id, source=source.description, steps=steps)


def _links(envelopes: Iterable[EventMetadata | None]) -> dict[LinkField, list[str]]:
    links: dict[LinkField, set[str]] = {
        "request_id": set(),
        "command_id": set(),
        "correlation_id": set(),
        "causation_id": set(),
        "event_id": set(),
    }
    for envelope in envelopes:
        if envelope is None:
            continue
        pairs: tuple[tuple[LinkField, str | None], ...] = (
            ("request_id", envelope.request_id),
            ("command_id", envelope.command_id),
            ("correlation_id", envelope.correlation_id),
            ("causation_id", envelope.event_id),  # events this one caused
            ("event_id", envelope.causation_id),  # the event that caused this one
        )
        for field, value in pairs:
            if value:
                links[field].add(value)
    return {field: sorted(values) for field, values in links.items()}


async def _operations(
    source: EventSource, related: Iterable[RecordedEvent]
) -> dict[str, OperationRef]:
    found: dict[str, OperationRef] = {}
    for event in related:
        if event.topic.startswith(OPERATION_TOPIC) and event.originator_id not in found:
            try:
                operation = fold(await source.read_stream(event.originator_id))
            except Problem:
                continue  # its start is not in this source
            assert isinstance(operation, Operation)
            found[operation.id] = OperationRef(
                operation_id=operation.id,
                action=operation.action,
                status=operation.status,
                error_code=operation.error_code,
                error_detail=operation.error_detail,
                actor_id=operation.actor_id,
                request_id=operation.request_id,
            )
    return found


def _step(
    event: RecordedEvent,
    envelope: EventMetadata | None,
    related: list[RecordedEvent],
    operations: dict[str, OperationRef],
) -> Step:
    step = Step(
        position=event.position,
        version=event.originator_version,
        event=event_name(event.topic),
        recorded_at=event.recorded_at,
        occurred_at=envelope.occurred_at if envelope else None,
        actor=actor_of(envelope),
        event_id=envelope.event_id if envelope else None,
        request_id=envelope.request_id if envelope else None,
        command_id=envelope.command_id if envelope else None,
        correlation_id=envelope.correlation_id if envelope else None,
        causation_id=envelope.causation_id if envelope else None,
    )
    if envelope is None:
        return step
    for other in related:
        theirs = envelope_of(other)
        if theirs is None:
            continue
        if envelope.causation_id and theirs.event_id == envelope.causation_id:
            step.caused_by = brief(other)
        elif other.originator_id == event.originator_id:
            continue  # the resource's own events are steps of their own
        elif _same_command(envelope, theirs):
            if other.originator_id in operations:
                if operations[other.originator_id] not in step.operations:
                    step.operations.append(operations[other.originator_id])
            else:
                step.same_command.append(brief(other))
        elif theirs.causation_id == envelope.event_id or (
            envelope.correlation_id
            and theirs.correlation_id == envelope.correlation_id
            and other.position > event.position
        ):
            if theirs.actor.kind == ActorKind.HOST:
                step.host_outcomes.append(brief(other))
            elif is_charge(other):
                step.charges.append(brief(other))
            else:
                step.followed_by.append(brief(other))
    return step


def _same_command(mine: EventMetadata, theirs: EventMetadata) -> bool:
    return bool(
        (mine.command_id and theirs.command_id == mine.command_id)
        or (mine.request_id and theirs.request_id == mine.request_id)
    )


# -- output ----------------------------------------------------------------------------


def render_json(history: ResourceHistory) -> str:
    return msgspec.json.format(msgspec.json.encode(history), indent=2).decode()


def render_text(history: ResourceHistory) -> str:
    count = f"{len(history.steps)} event" + ("" if len(history.steps) == 1 else "s")
    lines = [f"{history.resource_id}: {count} ({history.source})", ""]
    for s in history.steps:
        when = s.recorded_at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        lines.append(f"#{s.position} v{s.version} {s.event}  recorded {when} UTC")
        lines.append(f"    actor {s.actor or '-'}  request {s.request_id or '-'}")
        if s.command_id or (s.correlation_id and s.correlation_id != s.request_id):
            lines.append(
                f"    command {s.command_id or '-'}  correlation {s.correlation_id or '-'}"
            )
        if s.caused_by is not None:
            lines.append(f"    caused by {_line(s.caused_by)}")
        for op in s.operations:
            error = f" ({op.error_code}: {op.error_detail})" if op.error_code else ""
            lines.append(f"    operation {op.operation_id} {op.action} -> {op.status}{error}")
        for title, events in (
            ("same command", s.same_command),
            ("host outcome", s.host_outcomes),
            ("charge", s.charges),
            ("followed by", s.followed_by),
        ):
            lines.extend(f"    {title}: {_line(b)}" for b in events)
        lines.append("")
    return "\n".join(lines)


def _line(b: Brief) -> str:
    return f"#{b.position} {b.resource_id} v{b.version} {b.event} ({b.actor or '?'})"
