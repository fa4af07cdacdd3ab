"""The signature on every delivery: ``Scloud-Signature: t=<unix time>,v1=<hex HMAC>``.

``v1`` is HMAC-SHA256 keyed with the webhook's secret (its UTF-8 bytes, ``whsec_…``
included) over ``f"{t}."`` followed by the exact request body. ``docs/webhooks.md``
shows receivers how to check it; the tests run that snippet.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from enum import StrEnum


class Header(StrEnum):
    SIGNATURE = "Scloud-Signature"
    EVENT_ID = "Scloud-Event-Id"
    """The event's id: the same on every delivery of that event (dedupe on it)."""
    DELIVERY_ID = "Scloud-Delivery-Id"
    """One delivery of one event to one webhook; retries keep it, redeliveries get a new one."""
    EVENT_TYPE = "Scloud-Event-Type"
    POSITION = "Scloud-Position"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance`` seconds."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))
