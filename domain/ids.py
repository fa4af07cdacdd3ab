"""Type-prefixed identifiers that sort by creation time (``i-01J…``, ``vol-01J…``)."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time

# Crockford's base32: no I, L, O or U, so ids survive being read aloud or retyped.
_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_FROM_RFC4648 = str.maketrans(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", "0123456789abcdefghjkmnpqrstvwxyz"
)
_BODY_LENGTH = 26  # 48-bit millisecond timestamp + 80 random bits = 128 bits
_ID_PATTERN = re.compile(r"([a-z][a-z0-9]{0,11})-([0-9a-hjkmnp-tv-z]{26})")


def new_id(prefix: str, *, at_ms: int | None = None) -> str:
    """Return a fresh id such as ``i-01jd3…`` whose text order is creation order."""
    if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", prefix):
        raise ValueError(f"invalid id prefix {prefix!r}")
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    value = (ms << 80) | secrets.randbits(80)
    return f"{prefix}-{_body(value)}"


def _body(value: int) -> str:
    """26 Crockford characters of a 128-bit value, most significant first (130 bits, the two
    leading ones zero). base64's encoder does the bit work: shifted left by 6 into 17 bytes,
    the first 26 of its characters are exactly those 130 bits."""
    encoded = base64.b32encode((value << 6).to_bytes(17, "big"))[:_BODY_LENGTH]
    return encoded.decode("ascii").translate(_FROM_RFC4648)


def prefix_of(identifier: str) -> str:
    """Return the type prefix of a well-formed id, or raise ``ValueError``."""
    match = _ID_PATTERN.fullmatch(identifier)
    if match is None:
        raise ValueError(f"malformed id {identifier!r}")
    return match.group(1)


def is_id(identifier: str, prefix: str | None = None) -> bool:
    """True when ``identifier`` is well formed (and has ``prefix``, if given)."""
    match = _ID_PATTERN.fullmatch(identifier)
    return match is not None and (prefix is None or match.group(1) == prefix)


def derived_id(prefix: str, owner_id: str) -> str:
    """A deterministic id for a singleton tied to another aggregate (its quota ledger, say).

    ``derived_id("qta", "tnt-01jd…")`` is ``qta-01jd…``: finding it needs no lookup.
    """
    match = _ID_PATTERN.fullmatch(owner_id)
    if match is None:
        raise ValueError(f"malformed id {owner_id!r}")
    return f"{prefix}-{match.group(2)}"


def hashed_id(prefix: str, *parts: str) -> str:
    """A deterministic id named by what it is about (a charge by its resource, dimension,
    interval and price version): the same facts always give the same id, so a repeat of
    the work that made it can be recognised rather than counted twice."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return f"{prefix}-{_body(int.from_bytes(digest[:16], 'big'))}"
