"""How many wrong passwords an account and a network source may try: the login policy.

An account is locked after ``threshold`` failures in a row (the global config's
``lockout_threshold``; 0 never locks one) for ``LOCKOUT_SECONDS``; a source that fails
``SOURCE_FAILURES`` times within ``SOURCE_WINDOW_SECONDS`` is refused for the rest of that
window, whichever accounts it tried. Accounts are counted by the e-mail asked for, known or
not, so a lock says nothing about which addresses exist. Pure: the caller passes the time.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

LOCKOUT_SECONDS = 900.0
SOURCE_FAILURES = 30
SOURCE_WINDOW_SECONDS = 900.0
MAX_TRACKED = 100_000
"""Accounts and sources remembered at most (the oldest are forgotten first): a flood of
made-up addresses costs bounded memory."""


@dataclass
class _Account:
    failures: int = 0
    locked_until: float = 0.0


@dataclass
class LoginThrottle:
    accounts: OrderedDict[str, _Account] = field(default_factory=OrderedDict)
    sources: OrderedDict[str, deque[float]] = field(default_factory=OrderedDict)

    def retry_after(self, email: str, source: str | None, now: float) -> float:
        """Seconds until ``email`` may be tried from ``source`` again; 0 when it may now."""
        wait = 0.0
        account = self.accounts.get(email)
        if account is not None and account.locked_until > now:
            wait = account.locked_until - now
        failures = self._recent(source, now)
        if failures is not None and len(failures) >= SOURCE_FAILURES:
            wait = max(wait, failures[0] + SOURCE_WINDOW_SECONDS - now)
        return wait

    def failed(self, email: str, source: str | None, now: float, threshold: int) -> bool:
        """Count a wrong password; True when this one locked the account."""
        if source is not None:
            failures = self._recent(source, now)
            if failures is None:
                failures = self.sources[source] = deque()
            failures.append(now)
            self.sources.move_to_end(source)
        account = self.accounts.setdefault(email, _Account())
        self.accounts.move_to_end(email)
        account.failures += 1
        locked = 0 < threshold <= account.failures
        if locked:
            account.failures = 0
            account.locked_until = now + LOCKOUT_SECONDS
        self._forget_oldest()
        return locked

    def succeeded(self, email: str) -> None:
        """The right password ends the run of failures (not the source's count)."""
        self.accounts.pop(email, None)

    def _recent(self, source: str | None, now: float) -> deque[float] | None:
        if source is None:
            return None
        failures = self.sources.get(source)
        while failures and failures[0] + SOURCE_WINDOW_SECONDS <= now:
            failures.popleft()
        return failures

    def _forget_oldest(self) -> None:
        while len(self.accounts) > MAX_TRACKED:
            self.accounts.popitem(last=False)
        while len(self.sources) > MAX_TRACKED:
            self.sources.popitem(last=False)
