"""Secret event fields: what no export of the events may show.

Event state goes to subscribers (SSE, webhooks, NATS subjects) and to auditors' exports.
Some of it must not: a user's argon2 hash, an API key's or join token's SHA-256, the crypt
hash a guest password reset carries, the SMTP password. Each aggregate declares, beside its
events, which fields of which event are secret (``Aggregate.secret_fields``); every export
path replaces their values with ``REDACTED``. Only a sealed replay export keeps them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

REDACTED = "[redacted]"
"""What a secret field's value becomes in an export."""

SecretFields = Mapping[str, frozenset[str]]
"""Event name (``Created``, ``PasswordChanged``) -> the names of its secret fields."""

_LOOKS_SECRET = re.compile(
    r"pass(word|wd|phrase)?|hash|secret|token|key|crypt|credential|private|salt|seed|nkey"
    r"|signature|cookie|session",
    re.IGNORECASE,
)


def looks_secret(name: str) -> bool:
    """Whether a field's name suggests a secret: for events nobody declared, and for tests."""
    return _LOOKS_SECRET.search(name) is not None


def secret(**events: tuple[str, ...]) -> SecretFields:
    """``secret(Created=("password_hash",))``: an aggregate's declaration, read as written."""
    return {name: frozenset(fields) for name, fields in events.items()}
