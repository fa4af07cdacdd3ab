"""What a JSON body must be before it is decoded: UTF-8, shallow, one value per key.

msgspec reads the body; these checks cover what it does not: it recurses once per level
(a body nested 100,000 deep raised RecursionError, a 500), it lets the last of two equal
keys win (so two readers of the same body could see different values), and it is given
bytes whatever charset the client named.
"""

from __future__ import annotations

import array
import itertools
import json
import re
from typing import Any

from domain.errors import ValidationFailed

MAX_DEPTH = 64
"""Far deeper than any body the API takes; every recursive walk stays far from the limit."""

_STRING = re.compile(rb'"[^"]*"')
"""A string once its escaped backslashes and quotes are gone (backslashes are only in strings)."""
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_A_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")
_TOO_DEEP_RUN = b"[" * (MAX_DEPTH + 1)
_STEPS = bytes.maketrans(b"[]", b"\x01\xff")
"""An opener as +1 and a closer as -1 (as signed bytes): the running sum is the depth."""
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


def check_depth(raw: bytes) -> None:
    """422 for a body nested deeper than ``MAX_DEPTH``, before anything recurses into it."""
    # Only a body with that many opening brackets can be that deep: most are not looked at.
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    brackets = _STRING.sub(b"", unescaped).translate(_BRACKETS, _NOT_A_BRACKET)
    if _TOO_DEEP_RUN in brackets:  # the usual attack: a run of openers
        raise _too_deep()
    # Taking away the innermost pairs takes one level off every branch (the next line,
    # at bytes.replace's speed, leaves little of a wide body); then count what is left.
    rest = brackets.replace(b"[]", b"")
    if max(itertools.accumulate(array.array("b", rest.translate(_STEPS))), default=0) >= MAX_DEPTH:
        raise _too_deep()


def _too_deep() -> TooDeep:
    return TooDeep(f"invalid body: JSON nested deeper than {MAX_DEPTH} levels")


def check_unique_keys(raw: bytes) -> None:
    """422 for a body with a key twice in one object (which msgspec reads as the last one)."""
    if raw.count(b'"') < 4:  # not two keys
        return
    try:
        json.loads(raw, object_pairs_hook=_unique_keys)
    except ValueError:
        pass  # not JSON at all: the decoder has said so already, in its own words


def _unique_keys(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise DuplicateKey(f"invalid body: the key {key[:100]!r} appears twice in one object")
        seen.add(key)
