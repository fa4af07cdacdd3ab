"""What a JSON body must be before it is decoded: UTF-8, shallow, one value per key.

msgspec reads the body; these checks cover what it does not: it recurses once per level
(a body nested 100,000 deep raised RecursionError, a 500), it lets the last of two equal
keys win (so two readers of the same body could see different values), and it is given
bytes whatever charset the client named.
"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

from domain.errors import ValidationFailed

MAX_DEPTH = 64
"""Far deeper than any body the API takes; every recursive walk stays far from the limit."""

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")


class TooDeep(ValidationFailed):
    code = "json_too_deep"


class DuplicateKey(ValidationFailed):
    code = "duplicate_key"


def is_utf8_json(charset: str | None, raw: bytes) -> bool:
    """Whether the body is JSON's one encoding (RFC 8259 section 8.1), as labelled and as sent.

    A UTF-16 or UTF-32 text starts with a byte-order mark or has a zero byte in its first
    four (every JSON text starts with an ASCII character).
    """
    if charset is not None and charset.lower() != "utf-8":
        return False
    return not raw.startswith(_BOMS) and b"\x00" not in raw[:4]


def check_shape(raw: bytes) -> None:
    """422 for a body nested deeper than ``MAX_DEPTH`` or with a key twice in one object."""
    # Only a body with that many opening brackets can be that deep: most are not looked at.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH:
        brackets = _STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET)
        levels = itertools.accumulate(map(_STEP.__getitem__, brackets))
        if any(level > MAX_DEPTH for level in levels):
            raise TooDeep(f"invalid body: JSON nested deeper than {MAX_DEPTH} levels")
    if raw.count(b'"') >= 4:  # two keys at least
        try:
            json.loads(raw, object_pairs_hook=_unique_keys)
        except ValueError:
            pass  # not JSON at all: the decoder says so, in its own words


def _unique_keys(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise DuplicateKey(f"invalid body: the key {key[:100]!r} appears twice in one object")
        seen.add(key)
