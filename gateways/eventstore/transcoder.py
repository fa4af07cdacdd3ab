"""Event state as msgspec JSON, byte-compatible with eventsourcing's JSONTranscoder.

The stock library tags datetimes, UUIDs and Decimals as ``{"_type_": …, "_data_": …}``;
we write the same tags so its ``Application`` can read what we store, with no
configuration, while our own hot path encodes and decodes with msgspec.
"""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from eventsourcing.persistence import Transcoder, TranscodingNotRegisteredError

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def _tag(value: Any) -> Any:
    kind = type(value)
    if value is None or kind is str or kind is int or kind is bool:
        return value
    if kind is float or isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} has no JSON form and would not come back")
        return float(value)
    if isinstance(value, dict):
        return {key: _tag(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tag(item) for item in value]
    if isinstance(value, datetime):
        return {"_type_": "datetime_iso", "_data_": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"_type_": "uuid_hex", "_data_": value.hex}
    if isinstance(value, Decimal):
        return {"_type_": "decimal_str", "_data_": str(value)}
    # Subclasses of str and int (StrEnum, IntEnum…) are written as their value, as the
    # library's json-based transcoder does.
    if isinstance(value, str):
        return str.__str__(value)  # the characters, not a subclass's __str__
    if isinstance(value, int):
        return int(value)
    # Anything else (date, timedelta, set, bytes…) would come back as another type.
    raise TranscodingNotRegisteredError(
        f"Object of type {kind} is not serializable. Please define and register "
        "a custom transcoding for this type."
    )


def _untag(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            kind, data = value["_type_"], value["_data_"]
            if kind == "datetime_iso":
                return datetime.fromisoformat(data)
            if kind == "uuid_hex":
                return uuid.UUID(data)
            if kind == "decimal_str":
                return Decimal(data)
            raise ValueError(f"unknown transcoding {kind!r}")
        return {key: _untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


class MsgspecTranscoder(Transcoder):
    """A ``Transcoder`` for the library's mapper, backed by msgspec."""

    def encode(self, obj: Any) -> bytes:
        return _encoder.encode(_tag(obj))

    def decode(self, data: bytes) -> Any:
        return _untag(_decoder.decode(data))
