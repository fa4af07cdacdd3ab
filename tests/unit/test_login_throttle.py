"""The login policy's arithmetic: locks, windows, and forgetting."""

from __future__ import annotations

import pytest

from domain.identity import login_throttle
from domain.identity.login_throttle import LOCKOUT_SECONDS, SOURCE_WINDOW_SECONDS, LoginThrottle


def test_an_account_locks_at_the_threshold_and_unlocks_after_the_lockout() -> None:
    throttle = LoginThrottle()
    for n in range(4):
        assert not throttle.failed("a@x.example", f"10.0.0.{n}", 0.0, threshold=5)
    assert throttle.retry_after("a@x.example", "10.0.0.9", 1.0) == 0
    assert throttle.failed("a@x.example", "10.0.0.5", 1.0, threshold=5)
    assert throttle.retry_after("a@x.example", "10.0.0.9", 2.0) == LOCKOUT_SECONDS - 1
    assert throttle.retry_after("b@x.example", "10.0.0.9", 2.0) == 0
    assert throttle.retry_after("a@x.example", None, 1.0 + LOCKOUT_SECONDS) == 0


def test_zero_never_locks_and_success_resets() -> None:
    throttle = LoginThrottle()
    for _ in range(50):
        assert not throttle.failed("a@x.example", None, 0.0, threshold=0)
    for _ in range(4):
        throttle.failed("b@x.example", None, 0.0, threshold=5)
    throttle.succeeded("b@x.example")
    assert not throttle.failed("b@x.example", None, 0.0, threshold=5)


def test_a_source_is_refused_for_the_rest_of_its_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_throttle, "SOURCE_FAILURES", 3)
    throttle = LoginThrottle()
    for n in range(3):
        throttle.failed(f"u{n}@x.example", "192.0.2.1", float(n), threshold=5)
    assert throttle.retry_after("new@x.example", "192.0.2.1", 3.0) == SOURCE_WINDOW_SECONDS - 3
    assert throttle.retry_after("new@x.example", "192.0.2.2", 3.0) == 0
    # The oldest failure leaves the window: one more try is allowed.
    assert throttle.retry_after("new@x.example", "192.0.2.1", SOURCE_WINDOW_SECONDS + 0.5) == 0


def test_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(login_throttle, "MAX_TRACKED", 10)
    throttle = LoginThrottle()
    for n in range(100):
        throttle.failed(f"u{n}@x.example", f"198.51.100.{n}", 0.0, threshold=5)
    assert len(throttle.accounts) == 10 and len(throttle.sources) == 10
