"""The clock every domain decision reads, swappable for tests and replays."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Tells the current time as a timezone-aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(tz=UTC)


class ManualClock:
    """A clock that moves only when told to: for worked examples and tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = moment


_SYSTEM = SystemClock()
_current: ContextVar[Clock | None] = ContextVar("scloud_clock", default=None)


def now() -> datetime:
    """The current time according to the clock in force."""
    return (_current.get() or _SYSTEM).now()


@contextlib.contextmanager
def using(clock: Clock) -> Iterator[Clock]:
    """Put ``clock`` in force for the code inside the ``with`` block."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)
