"""How many denied requests of one source address are recorded one by one, per window.

A prober sends as many requests as it likes; each one recorded is a permanent event. So
each source gets ``limit`` records per ``window`` seconds, and whatever it sends beyond
that is only counted, per tenant aimed at, and recorded as one count when its window
closes. Memory stays bounded whatever the number of sources: past ``max_sources`` the
newcomers share one window under ``OTHER_SOURCES``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

OTHER_SOURCES = "other sources"
"""The window newcomers share once ``max_sources`` sources have one each."""
MAX_TARGETS = 64
"""Distinct (tenant, resource) counts one window keeps; beyond it, drops are unattributed."""

Target = tuple[str | None, str | None]
"""Whom a dropped denial concerned: (tenant, or a resource whose tenant is to be found)."""


@dataclass(frozen=True)
class Dropped:
    """Denials of one source, aimed at one target, counted but not recorded one by one."""

    source: str
    target: Target
    count: int
    first_at: datetime
    last_at: datetime


@dataclass
class _Window:
    opened: float
    recorded: int = 0
    dropped: Counter[Target] = field(default_factory=Counter)
    first_at: datetime | None = None
    last_at: datetime | None = None

    def drop(self, target: Target, at: datetime) -> None:
        if target not in self.dropped and len(self.dropped) >= MAX_TARGETS:
            target = (None, None)
        self.dropped[target] += 1
        self.first_at = self.first_at or at
        self.last_at = at

    def counts(self, source: str) -> list[Dropped]:
        if self.first_at is None or self.last_at is None:
            return []
        return [
            Dropped(source, target, count, self.first_at, self.last_at)
            for target, count in self.dropped.items()
        ]


class SourceBudget:
    """Fixed windows per source; ``now`` is a monotonic clock reading in seconds."""

    def __init__(self, limit: int, window: float, *, max_sources: int = 10_000) -> None:
        self.limit = limit
        self.window = window
        self.max_sources = max_sources
        self._windows: dict[str, _Window] = {}

    def admit(self, source: str, target: Target, now: float, at: datetime) -> bool:
        """True if this denial is recorded; False if it is only counted."""
        window = self._window(source, now)
        if window.recorded < self.limit:
            window.recorded += 1
            return True
        window.drop(target, at)
        return False

    def count(self, source: str, target: Target, now: float, at: datetime) -> None:
        """Count a denial that could not be kept for recording (the queue was full)."""
        self._window(source, now).drop(target, at)

    @property
    def dropping(self) -> bool:
        return any(w.first_at is not None for w in self._windows.values())

    def closed(self, now: float) -> list[Dropped]:
        """The counts of every window that has ended; their sources start afresh."""
        ended = [s for s, w in self._windows.items() if now - w.opened >= self.window]
        return [d for source in ended for d in self._windows.pop(source).counts(source)]

    def drain(self) -> list[Dropped]:
        """Every count so far, ended windows or not (the platform is closing)."""
        counts = [d for s, w in self._windows.items() for d in w.counts(s)]
        self._windows.clear()
        return counts

    def _window(self, source: str, now: float) -> _Window:
        window = self._windows.get(source)
        if window is not None and now - window.opened < self.window:
            return window
        if window is None and len(self._windows) >= self.max_sources:
            source = OTHER_SOURCES
            window = self._windows.get(source)
            if window is not None and now - window.opened < self.window:
                return window
        if window is not None and window.first_at is not None:
            # Its window ended with drops not yet collected: keep counting in it, so that
            # the count is recorded once, by ``closed``, rather than lost.
            return window
        fresh = _Window(opened=now)
        self._windows[source] = fresh
        return fresh
