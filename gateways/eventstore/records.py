"""What goes into the event store and what comes out of it."""

from __future__ import annotations

from datetime import datetime

import msgspec

from domain.errors import Conflict, ValidationFailed
from domain.metadata import EventMetadata

_metadata_decoder = msgspec.json.Decoder(EventMetadata)
_metadata_encoder = msgspec.json.Encoder()


def encode_metadata(metadata: EventMetadata) -> bytes:
    return _metadata_encoder.encode(metadata)


def decode_metadata(raw: bytes) -> EventMetadata:
    return _metadata_decoder.decode(raw)


class NewEvent(msgspec.Struct, frozen=True):
    """An event about to be appended, already mapped to the library's stored form."""

    originator_id: str
    originator_version: int
    topic: str
    state: bytes
    metadata: EventMetadata


class AppendRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One command's events, written together or not at all."""

    events: tuple[NewEvent, ...]
    command_id: str | None = None
    fingerprint: bytes = b""
    result: bytes = b""
    """What the command answered; a repeat of ``command_id`` gets it back."""


class AppendResult(msgspec.Struct, frozen=True):
    positions: tuple[int, ...]
    result: bytes
    replayed: bool = False
    """True when the command id had been seen and nothing new was written."""

    @property
    def last_position(self) -> int:
        return self.positions[-1] if self.positions else 0


class RecordedEvent(msgspec.Struct, frozen=True):
    """An event as stored, with its position in the global, commit-ordered log."""

    position: int
    originator_id: str
    originator_version: int
    topic: str
    state: bytes
    metadata: bytes
    """The envelope's exact stored bytes (what the hash covers)."""
    tenant_id: str | None
    chain_hash: bytes | None
    recorded_at: datetime

    def envelope(self) -> EventMetadata:
        return decode_metadata(self.metadata)


class CommandRecord(msgspec.Struct, frozen=True):
    command_id: str
    fingerprint: bytes
    positions: tuple[int, ...]
    result: bytes


class ConcurrencyConflict(Conflict):
    """Someone else appended to the aggregate first; reload and decide again."""

    code = "concurrency_conflict"


class IdempotencyKeyReused(ValidationFailed):
    """The command id was used before for a different command."""

    code = "idempotency_key_reused"
