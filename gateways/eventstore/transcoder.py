"""Event state as msgspec JSON, byte-compatible with eventsourcing's JSONTranscoder.

The stock library tags datetimes, UUIDs and Decimals as ``{"_type_": …, "_data_": …}``;
we write the same tags so its ``Application`` can read what we store, with no
configuration, while our own hot path encodes and decodes with msgspec.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec
from eventsourcing.persistence import Transcoder

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder()


def _tag(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"_type_": "datetime_iso", "_data_": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"_type_": "uuid_hex", "_data_": value.hex}
    if isinstance(value, Decimal):
        return {"_type_": "decimal_str", "_data_": str(value)}
    if isinstance(value, dict):
        return {key: _tag(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_tag(item) for item in value]
    return value


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
