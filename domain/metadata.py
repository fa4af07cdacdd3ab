"""Who caused an event and why: the envelope carried on every stored event."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import msgspec

from domain import clock


class ActorKind(StrEnum):
    USER = "user"
    SUB_ACCOUNT = "sub_account"
    API_KEY = "api_key"
    ADMIN = "admin"
    SYSTEM = "system"
    HOST = "host"


class Actor(msgspec.Struct, frozen=True, omit_defaults=True):
    kind: ActorKind
    id: str
    via: str | None = None
    """The API key the actor signed in with, if any."""

    @classmethod
    def system(cls, component: str = "platform") -> Actor:
        return cls(ActorKind.SYSTEM, component)


class EventMetadata(msgspec.Struct, frozen=True, kw_only=True):
    """Stored beside each event's state and covered by the hash chain."""

    event_id: str
    tenant_id: str | None
    actor: Actor
    request_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    command_id: str | None = None
    source: str | None = None
    """The caller's network address, for requests."""
    occurred_at: datetime


class CommandContext(msgspec.Struct, frozen=True, kw_only=True):
    """What a command brings from its caller into every event it causes."""

    actor: Actor
    tenant_id: str | None = None
    command_id: str | None = None
    """Idempotency key: a repeat of the same id returns the first result."""
    fingerprint: bytes = b""
    """Digest of the command's body, so a reused key with another body is refused."""
    request_id: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    source: str | None = None

    def metadata(self) -> EventMetadata:
        """A fresh envelope for one event caused by this command."""
        return EventMetadata(
            event_id=uuid.uuid4().hex,
            tenant_id=self.tenant_id,
            actor=self.actor,
            request_id=self.request_id,
            correlation_id=self.correlation_id or self.request_id,
            causation_id=self.causation_id,
            command_id=self.command_id,
            source=self.source,
            occurred_at=clock.now(),
        )
