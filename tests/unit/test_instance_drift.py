"""Drift on the instance aggregate, pure: what a host should hold, and how it is healed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from domain import clock
from domain.compute.instance import (
    BUILDING,
    DEADLINES,
    ERROR,
    PURGED,
    RECYCLED,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    Instance,
)
from tests.unit.test_instance_lifecycle import running

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def manual() -> Iterator[clock.ManualClock]:
    with clock.using(clock.ManualClock(START)) as moving:
        assert isinstance(moving, clock.ManualClock)
        yield moving


@pytest.mark.parametrize(
    ("status", "placed_on", "expected"),
    [
        (RUNNING, "hst-a", RUNNING),
        (STOPPED, "hst-a", STOPPED),
        (RECYCLED, "hst-a", STOPPED),
        (PURGED, "hst-a", "absent"),
        (RUNNING, "hst-b", "absent"),
        (STOPPED, None, "absent"),
        (STARTING, "hst-a", None),
        (STOPPING, "hst-b", None),
        (BUILDING, "hst-a", None),
        (ERROR, "hst-b", None),
    ],
)
def test_what_a_host_should_hold(status: str, placed_on: str | None, expected: str | None) -> None:
    assert Instance.expected_on(status, placed_on, "hst-a") == expected


@pytest.mark.parametrize(
    ("expected", "observed", "action"),
    [
        (RUNNING, "running", None),
        (RUNNING, "stopped", "ensure_running"),
        (RUNNING, "crashed", "ensure_running"),
        (RUNNING, "absent", "rebuild"),
        (STOPPED, "running", "ensure_stopped"),
        (STOPPED, "paused", "ensure_stopped"),
        (STOPPED, "crashed", None),
        (STOPPED, "absent", None),
        ("absent", "stopped", "ensure_absent"),
        ("absent", "absent", None),
        (None, "running", None),
    ],
)
def test_the_heal_for_each_difference(
    expected: str | None, observed: str, action: str | None
) -> None:
    assert Instance.heal_for(expected, observed) == action


def test_a_stopped_guest_of_a_running_instance_starts_through_starting(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    assert instance.detect_drift("hst-a", "stopped", "drift-1") == "ensure_running"
    assert (instance.status, instance.step_id) == (STARTING, "drift-1")
    assert instance.deadline == START + DEADLINES[STARTING]
    assert instance.drift is not None and instance.drift["expected"] == RUNNING
    names = [type(e).__name__ for e in instance.collect_events()]
    assert names[-2:] == ["DriftDetected", "StepStarted"]
    # A step is pending now: nothing more is detected until its outcome.
    assert instance.detect_drift("hst-a", "stopped", "drift-2") is None
    assert instance.host_reported("drift-1", RUNNING, None) and instance.status == RUNNING


def test_a_missing_guest_is_rebuilt_through_building(manual: clock.ManualClock) -> None:
    instance = running()
    assert instance.detect_drift("hst-a", "absent", "drift-1") == "rebuild"
    assert (instance.status, instance.host_id) == (BUILDING, "hst-a")


def test_a_guest_elsewhere_is_removed_once_per_deadline(manual: clock.ManualClock) -> None:
    instance = running("hst-a")
    assert instance.detect_drift("hst-b", "running", "drift-1") == "ensure_absent"
    assert (instance.status, instance.step_id) == (RUNNING, None)  # no step of its own
    assert instance.detect_drift("hst-b", "running", "drift-2") is None  # in flight
    manual.advance(DEADLINES[STOPPING] + timedelta(seconds=1))
    assert instance.detect_drift("hst-b", "running", "drift-3") == "ensure_absent"
    assert instance.drift is not None and instance.drift["step_id"] == "drift-3"


def test_a_recycled_guest_found_running_is_stopped_without_leaving_the_bin(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    instance.delete("stp-del")
    assert instance.host_reported("stp-del", STOPPED, None) and instance.status == RECYCLED
    assert instance.detect_drift("hst-a", "running", "drift-1") == "ensure_stopped"
    assert instance.status == RECYCLED


def test_an_unclaimed_guest_of_an_instance_in_error_is_stopped_once_per_deadline(
    manual: clock.ManualClock,
) -> None:
    instance = running("hst-a")
    assert instance.stop_unclaimed("hst-a", "drift-0") is None  # not in error
    instance.stop("stp-stop")
    assert instance.status == STOPPING
    manual.advance(DEADLINES[STOPPING] + timedelta(seconds=1))
    assert instance.time_out(clock.now()) and instance.status == ERROR
    assert instance.stop_unclaimed("hst-b", "drift-1") is None  # not its host
    assert instance.stop_unclaimed("hst-a", "drift-1") == "ensure_stopped"
    assert instance.status == ERROR  # no step of its own
    assert instance.drift is not None and instance.drift["step_id"] == "drift-1"
    assert instance.stop_unclaimed("hst-a", "drift-2") is None  # in flight
    manual.advance(DEADLINES[STOPPING] + timedelta(seconds=1))
    assert instance.stop_unclaimed("hst-a", "drift-3") == "ensure_stopped"
    names = [type(e).__name__ for e in instance.collect_events()]
    assert names[-2:] == ["DriftDetected", "DriftDetected"]
