"""What the dispatcher reads and writes: cursors, targets, deliveries, redelivery requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

SUCCEEDED = "succeeded"
RETRYING = "retrying"
FAILED = "failed"


class Cursor(msgspec.Struct, kw_only=True):
    position: int
    """Every event up to here is delivered or filtered out."""
    replay_seq: int
    resume_seq: int
    failures: int
    next_attempt_at: datetime
    pending_delivery_id: str | None
    """The delivery being retried, for the event at ``pending_position``."""
    pending_position: int | None
    failing_since: datetime | None = None
    """The first failed attempt since the last success (or resume): how long it has failed."""


class Target(msgspec.Struct, kw_only=True):
    """A webhook as the registry knows it, with the dispatcher's cursor (None: not begun)."""

    webhook_id: str
    tenant_id: str
    url: str
    event_types: list[str]
    status: str
    allow_private: bool
    secret_salt: str
    key_id: str
    created_position: int
    replay_seq: int
    replay_after: int
    resume_seq: int
    cursor: Cursor | None


class Delivery(msgspec.Struct, kw_only=True):
    """One event sent to one webhook; its attempts share the delivery id."""

    delivery_id: str
    webhook_id: str
    tenant_id: str
    event_id: str
    position: int
    event_type: str
    resource_id: str
    redelivery_of: str | None = None


class RedeliveryRequest(msgspec.Struct, kw_only=True):
    position: int
    """Of the ``RedeliveryRequested`` event: the request's identity."""
    webhook_id: str
    delivery_id: str
    """The delivery to send again."""
    event_position: int


DELIVERY_COLUMNS = (
    "delivery_id, webhook_id, event_id, position, event_type, resource_id, status, attempts, "
    "created_at, last_attempt_at, last_status_code, last_error, redelivery_of"
)
CURSOR_COLUMNS = (
    "position, replay_seq, resume_seq, failures, next_attempt_at, pending_delivery_id, "
    "pending_position, failing_since"
)


def cursor_of(row: Any, offset: int = 0) -> Cursor | None:
    if row[offset] is None:
        return None
    fields = ("position", "replay_seq", "resume_seq", "failures", "next_attempt_at")
    values = {name: row[offset + i] for i, name in enumerate(fields)}
    return Cursor(
        **values,
        pending_delivery_id=row[offset + 5],
        pending_position=row[offset + 6],
        failing_since=row[offset + 7],
    )
