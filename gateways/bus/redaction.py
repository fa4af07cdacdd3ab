"""Secret fields out of an event's stored state, before it leaves the platform.

The fields come from the aggregate's declaration (``Aggregate.secret_fields``). An event
whose topic names no aggregate of ours (a removed class, another system's) has nobody's
declaration, so every field whose name looks secret is hidden instead: unknown state fails
closed, not open.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from eventsourcing.utils import resolve_topic

from domain.aggregate import Aggregate
from domain.secrets import REDACTED, looks_secret

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()
_UNREADABLE = ("*",)
"""What an export says it hid when the state was not a JSON object: everything."""


class Redacted(msgspec.Struct, frozen=True):
    state: bytes
    hidden: tuple[str, ...]
    """The fields whose values were replaced, sorted; empty when nothing was."""


@functools.cache
def declared(topic: str) -> frozenset[str] | None:
    """The secret fields declared for events of ``topic``; None when no aggregate declares."""
    owner_topic, _, name = topic.rpartition(".")
    try:
        owner = resolve_topic(owner_topic)
    except Exception:  # another system's topic, or a class since removed
        return None
    if not (isinstance(owner, type) and issubclass(owner, Aggregate)):
        return None
    return frozenset(owner.secret_fields.get(name, ()))


def redact(topic: str, state: bytes) -> Redacted:
    """``state`` with each secret field's value (unless null) replaced by ``REDACTED``."""
    fields = declared(topic)
    if fields is not None and not fields:
        return Redacted(state, ())  # the usual case: nothing to hide, no parsing
    try:
        data: Any = _decoder.decode(state)
    except msgspec.DecodeError:
        return Redacted(b"{}", _UNREADABLE)
    if not isinstance(data, dict):
        return Redacted(b"{}", _UNREADABLE)
    names = fields if fields is not None else {key for key in data if looks_secret(key)}
    hidden = tuple(sorted(key for key in names if data.get(key) is not None))
    if not hidden:
        return Redacted(state, ())
    for key in hidden:
        data[key] = REDACTED
    return Redacted(_encoder.encode(data), hidden)
