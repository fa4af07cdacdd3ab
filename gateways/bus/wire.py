"""The exported event: what subscribers (NATS, webhooks, SSE) receive for each event.

Its ``data`` never holds a secret: declared secret fields are redacted here, the one place
every subscriber's copy is made (``gateways/bus/redaction.py``).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.metadata import EventMetadata
from gateways.bus.redaction import redact
from gateways.bus.subjects import event_name
from gateways.eventstore.records import RecordedEvent

_encoder = msgspec.json.Encoder()


class ExportedEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    position: int
    type: str
    topic: str
    resource_id: str
    version: int
    tenant_id: str | None
    recorded_at: datetime
    metadata: EventMetadata
    data: msgspec.Raw
    """The event's stored state, as the JSON it is stored as, secret fields redacted."""
    chain_hash: str | None
    redacted: tuple[str, ...] = ()
    """The fields of ``data`` whose values were replaced by ``"[redacted]"`` (absent: none).
    Such an event's ``chain_hash`` covers the stored state, so only a sealed replay export
    can check its link."""


def export(event: RecordedEvent) -> ExportedEvent:
    redacted = redact(event.topic, event.state)
    return ExportedEvent(
        position=event.position,
        type=event_name(event.topic),
        topic=event.topic,
        resource_id=event.originator_id,
        version=event.originator_version,
        tenant_id=event.tenant_id,
        recorded_at=event.recorded_at,
        metadata=event.envelope(),
        data=msgspec.Raw(redacted.state),
        chain_hash=event.chain_hash.hex() if event.chain_hash else None,
        redacted=redacted.hidden,
    )


def encode(event: RecordedEvent) -> bytes:
    return _encoder.encode(export(event))


def decode(payload: bytes) -> ExportedEvent:
    return msgspec.json.decode(payload, type=ExportedEvent)
