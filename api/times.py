"""The one reading of a time the API is given: RFC 3339 with an offset, nothing else.

Every time parameter (``as_of``, ``since``, ``until``, …) goes through ``parse_time``, so that
they all refuse the same things the same way: a time with no offset (whose meaning depends
on the server's zone), epoch seconds, ISO 8601's other shapes (``20270301T000000Z``).
"""

from __future__ import annotations

from datetime import datetime
from functools import cache

import msgspec
import msgspec.inspect

from domain.errors import ValidationFailed

AS_OF = "as_of"
"""The time-travel parameter of every read of one resource."""
EXAMPLE = "2027-03-01T00:00:00Z"


def parse_time(name: str, given: str, where: str = "query") -> datetime:
    """``given`` as an aware datetime, or 422 naming the parameter ``name``."""
    try:
        # Strict: a string is read only as RFC 3339, never as a number of seconds.
        moment = msgspec.convert(given, datetime, strict=True)
    except msgspec.ValidationError:
        raise ValidationFailed(
            f"invalid {where}: {name} must be an RFC 3339 time with an offset, e.g. {EXAMPLE}"
        ) from None
    if moment.tzinfo is None:
        raise ValidationFailed(
            f"invalid {where}: {name} needs an offset (Z or +hh:mm), e.g. {EXAMPLE}"
        )
    return moment


@cache
def time_fields(kind: type[msgspec.Struct]) -> frozenset[str]:
    """The names (as sent) of the fields of ``kind`` that hold a time."""
    info = msgspec.inspect.type_info(kind)
    assert isinstance(info, msgspec.inspect.StructType)
    return frozenset(f.encode_name for f in info.fields if _holds_time(f.type))


def _holds_time(info: msgspec.inspect.Type) -> bool:
    if isinstance(info, msgspec.inspect.UnionType):
        return any(_holds_time(t) for t in info.types)
    if isinstance(info, msgspec.inspect.Metadata):
        return _holds_time(info.type)
    return isinstance(info, msgspec.inspect.DateTimeType)
