"""``explain-charge CHARGE_ID``: the events behind a charge, back to the request that began it.

Billing does not exist yet. This follows what the architecture promises of it: charges are
events whose name speaks of a charge (``ChargePosted``), either the charge's own stream or
carrying ``charge_id`` in their state, each with the causation id of the event it rated and,
in its state, the ``resource_id`` it bills. When billing lands, check these assumptions
against its events before relying on the output.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateways.eventstore.records import RecordedEvent
from replay import history
from replay.aggregates import envelope_of
from replay.errors import Problem, Usage
from replay.history import Brief, Step, brief, is_charge, resource_history
from replay.source import EventSource, batches

_MAX_HOPS = 100
_state = msgspec.json.Decoder(dict[str, Any])


class ChargeExplanation(msgspec.Struct, kw_only=True):
    charge_id: str
    charge_events: list[Brief]
    caused_by: list[Brief]
    """From the event the charge rated back to the first event without a cause."""
    resource_id: str | None
    origin: Step | None
    """The billed resource's first event, with its request and operation."""


async def explain_charge(source: EventSource, charge_id: str) -> ChargeExplanation:
    charges: list[RecordedEvent] = []
    async for batch in batches(source, topic_contains="Charge"):
        charges += [e for e in batch if is_charge(e)]
    if not charges:
        raise Usage(
            f"billing is not built yet: {source.description} holds no charge events, "
            "so there is no charge to explain"
        )
    mine = [
        e for e in charges if e.originator_id == charge_id or _field(e, "charge_id") == charge_id
    ]
    if not mine:
        raise Problem(f"unknown charge {charge_id!r}: no charge event names it")
    chain = await _causes(source, mine[0])
    resource_id = _field(mine[0], "resource_id")
    if resource_id is None and chain:
        resource_id = chain[-1].originator_id
    origin = None
    if resource_id is not None:
        try:
            origin = (await resource_history(source, resource_id)).steps[0]
        except Problem:
            origin = None  # the resource's events are not in this source
    return ChargeExplanation(
        charge_id=charge_id,
        charge_events=[brief(e) for e in mine],
        caused_by=[brief(e) for e in chain],
        resource_id=resource_id,
        origin=origin,
    )


def _field(event: RecordedEvent, name: str) -> str | None:
    try:
        value = _state.decode(event.state).get(name)
    except msgspec.DecodeError:
        return None
    return value if isinstance(value, str) else None


async def _causes(source: EventSource, event: RecordedEvent) -> list[RecordedEvent]:
    chain: list[RecordedEvent] = []
    seen: set[str] = set()
    envelope = envelope_of(event)
    while envelope is not None and envelope.causation_id and len(chain) < _MAX_HOPS:
        if envelope.causation_id in seen:
            break
        seen.add(envelope.causation_id)
        found = await source.read_linked({"event_id": [envelope.causation_id]})
        if not found:
            break
        chain.append(found[0])
        envelope = envelope_of(found[0])
    return chain


def render_json(explanation: ChargeExplanation) -> str:
    return msgspec.json.format(msgspec.json.encode(explanation), indent=2).decode()


def render_text(explanation: ChargeExplanation) -> str:
    def line(b: Brief) -> str:
        return f"  #{b.position} {b.resource_id} v{b.version} {b.event} ({b.actor or '?'})"

    lines = [f"charge {explanation.charge_id}:"]
    lines += [line(b) for b in explanation.charge_events]
    if explanation.caused_by:
        lines.append("caused by:")
        lines += [line(b) for b in explanation.caused_by]
    if explanation.resource_id is not None:
        lines.append(f"billed resource {explanation.resource_id}, which began with:")
        if explanation.origin is None:
            lines.append("  (its events are not in this source)")
        else:
            origin = history.ResourceHistory(
                resource_id=explanation.resource_id, source="", steps=[explanation.origin]
            )
            text = history.render_text(origin).splitlines()[2:]  # without the title
            lines += ["  " + t for t in text if t]
    return "\n".join(lines)
