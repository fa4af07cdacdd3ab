"""``explain-charge CHARGE_ID``: the events behind a charge, back to the request that began it.

A charge is one line of a ``BillingAccount.ChargesPosted`` event (a settlement round posts
a tenant's lines together): the line names its resource, dimension, interval [start, end)
and price version. The charge is explained by the resource's own events from its creation
up to the end of that interval (the event that ended it included), since they decide what
it was using, and by the request and command (with its Operation) that created the
resource. Everything is read from the events alone, so it works the same on a backup or
an export.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gateways.eventstore.records import RecordedEvent
from replay.aggregates import OPERATION_TOPIC, envelope_of, fold
from replay.errors import Problem, Usage
from replay.history import Brief, OperationRef, Step, brief, resource_history
from replay.source import EventSource, batches

POSTED = "domain.billing.account:BillingAccount.ChargesPosted"
_state = msgspec.json.Decoder(dict[str, Any])


class Posting(msgspec.Struct, kw_only=True):
    """The event that posted the charge, and the command it came from."""

    event: Brief
    command_id: str | None
    operation: OperationRef | None


class ResourceEvent(msgspec.Struct, kw_only=True):
    position: int
    version: int
    event: str
    at: datetime
    """When it happened (its envelope's time; when it was stored if it has none)."""
    during: bool
    """True for events within the charge's interval (its end included: what ended it),
    False for those before it."""
    actor: str | None
    request_id: str | None
    command_id: str | None


class ChargeExplanation(msgspec.Struct, kw_only=True):
    charge_id: str
    charge: dict[str, Any]
    posted_by: Posting
    resource_id: str
    events: list[ResourceEvent]
    """The resource's events from its creation up to the end of the charge's interval."""
    origin: Step | None
    """The resource's first event, with the request, command and operation that made it;
    None when the source does not hold the resource's events."""


async def explain_charge(source: EventSource, charge_id: str) -> ChargeExplanation:
    if not charge_id.startswith("chg-") or len(charge_id) > 100:
        raise Usage(f"{charge_id[:100]!r} is not a charge id (they look like chg-…)")
    found = await _posting(source, charge_id)
    if found is None:
        raise Problem(
            f"unknown charge {charge_id!r}: no ChargesPosted event in the source holds it"
        )
    event, charge = found
    resource_id = str(charge["resource_id"])
    start = datetime.fromisoformat(charge["start"])
    end = datetime.fromisoformat(charge["end"])
    events: list[ResourceEvent] = []
    origin = None
    try:
        steps = (await resource_history(source, resource_id)).steps
    except Problem:
        steps = []  # the resource's events are not in this source
    for step in steps:
        at = step.occurred_at or step.recorded_at
        if at > end:
            break
        events.append(
            ResourceEvent(
                position=step.position,
                version=step.version,
                event=step.event,
                at=at,
                during=at >= start,
                actor=step.actor,
                request_id=step.request_id,
                command_id=step.command_id,
            )
        )
    if steps:
        origin = steps[0]
    return ChargeExplanation(
        charge_id=charge_id,
        charge=charge,
        posted_by=await _posted_by(source, event),
        resource_id=resource_id,
        events=events,
        origin=origin,
    )


async def _posting(
    source: EventSource, charge_id: str
) -> tuple[RecordedEvent, dict[str, Any]] | None:
    """The ChargesPosted event holding ``charge_id``, and the charge line in it."""
    needle = charge_id.encode()
    async for batch in batches(source, topic_prefix=POSTED):
        for event in batch:
            if event.topic != POSTED or needle not in event.state:
                continue
            for charge in _state.decode(event.state).get("charges", []):
                if charge.get("charge_id") == charge_id:
                    return event, charge
    return None


async def _posted_by(source: EventSource, event: RecordedEvent) -> Posting:
    envelope = envelope_of(event)
    command_id = envelope.command_id if envelope else None
    operation = None
    if command_id:
        for other in await source.read_linked({"command_id": [command_id]}):
            if other.topic.startswith(OPERATION_TOPIC):
                try:
                    done = fold(await source.read_stream(other.originator_id))
                except Problem:
                    continue
                operation = OperationRef(
                    operation_id=done.id,
                    action=getattr(done, "action", "?"),
                    status=getattr(done, "status", "?"),
                    error_code=getattr(done, "error_code", None),
                    error_detail=getattr(done, "error_detail", None),
                    actor_id=getattr(done, "actor_id", "?"),
                    request_id=getattr(done, "request_id", None),
                )
                break
    return Posting(event=brief(event), command_id=command_id, operation=operation)


def render_json(explanation: ChargeExplanation) -> str:
    return msgspec.json.format(msgspec.json.encode(explanation), indent=2).decode()


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _operation(op: OperationRef) -> str:
    error = f" ({op.error_code}: {op.error_detail})" if op.error_code else ""
    return f"operation {op.operation_id} {op.action} -> {op.status}{error} by {op.actor_id}"


def render_text(explanation: ChargeExplanation) -> str:
    c, posted = explanation.charge, explanation.posted_by
    lines = [
        f"charge {explanation.charge_id}",
        f"  resource {c['resource_id']}  region {c['region_id']}  project {c['project_id'] or '-'}",
        f"  {c['dimension']} x {c['quantity']} over [{c['start']}, {c['end']})",
        f"  {c['unit_price']} per unit-hour, discount {c['discount_percent']}%, "
        f"price version {c['price_version']}",
        f"  amount {c['amount_minor']} {c['currency']} (minor units)",
        f"posted by #{posted.event.position} {posted.event.resource_id} v{posted.event.version} "
        f"{posted.event.event} stored {_time(posted.event.recorded_at)} UTC "
        f"({posted.event.actor or '?'})",
        f"  command {posted.command_id or '-'}",
    ]
    if posted.operation is not None:
        lines.append(f"  {_operation(posted.operation)}")
    if explanation.origin is None:
        lines.append(f"{explanation.resource_id}: its events are not in this source")
        return "\n".join(lines)
    count = len(explanation.events)
    lines.append(
        f"{explanation.resource_id}: {count} event{'' if count == 1 else 's'} from its creation "
        "to the end of the charge's interval"
    )
    for e in explanation.events:
        lines.append(
            f"  #{e.position} {_time(e.at)} v{e.version} {e.event}  actor {e.actor or '-'}  "
            f"request {e.request_id or '-'}  {'during' if e.during else 'before'}"
        )
    origin = explanation.origin
    lines.append(
        f"started by request {origin.request_id or '-'}  command {origin.command_id or '-'}  "
        f"actor {origin.actor or '-'}"
    )
    lines += [f"  {_operation(op)}" for op in origin.operations]
    return "\n".join(lines)
