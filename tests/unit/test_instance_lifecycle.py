"""The instance aggregate's newer transitions, pure: migration, reinstall, password, console.

Every transitional state ends by its host's outcome for *its* step or by its deadline; these
check the rules the API tests cannot reach directly (stale steps, phases, deadlines).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import clock
from domain.compute.instance import (
    DEADLINES,
    ERROR,
    MIGRATING,
    MOVING,
    PREPARING,
    RESETTING_PASSWORD,
    RUNNING,
    STOPPED,
    ConsoleUnavailable,
    Instance,
)
from domain.errors import InvalidState

HASH = "$6$salt$" + "x" * 86
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def manual() -> clock.ManualClock:
    with clock.using(clock.ManualClock(START)) as moving:
        assert isinstance(moving, clock.ManualClock)
        yield moving


def running(on: str = "hst-a") -> Instance:
    instance = Instance._create(
        Instance.Created,
        id="i-01m8t0000000000000000000zz",
        tenant_id="tnt-1",
        project_id=None,
        name="vm",
        region_id="rgn-1",
        flavor_id="flv-1",
        image_id="img-1",
        vcpus=2,
        memory_mb=1024,
        disk_gb=10,
        preemptible=False,
        server_group_id=None,
        requested_at=clock.now(),
        charge_mode="on_demand",
    )
    instance.schedule(on, "stp-build", {})
    assert instance.host_reported("stp-build", RUNNING, None)
    return instance


def names(instance: Instance) -> list[str]:
    return [type(e).__qualname__.rpartition(".")[2] for e in instance.collect_events()]


def test_a_migration_prepares_then_moves_and_ignores_other_steps(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    instance.migrate("hst-b", "stp-prep", {}, live=True)
    assert instance.status == MIGRATING and instance.migration is not None
    assert instance.migration["phase"] == PREPARING and instance.host_id == "hst-a"
    assert not instance.complete_migration("stp-prep")  # not before the target prepared
    assert not instance.migration_prepared("stp-other", "stp-move")
    assert instance.migration_prepared("stp-prep", "stp-move")
    assert instance.migration["phase"] == MOVING and instance.step_id == "stp-move"
    assert not instance.complete_migration("stp-prep")  # the earlier step is stale now
    assert instance.complete_migration("stp-move")
    assert (instance.status, instance.host_id, instance.migration) == (RUNNING, "hst-b", None)
    assert names(instance)[-3:] == ["MigrationStarted", "MigrationPrepared", "Migrated"]


def test_a_cold_migration_of_a_stopped_instance_arrives_stopped(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    instance.stop("stp-stop")
    instance.host_reported("stp-stop", STOPPED, None)
    with pytest.raises(InvalidState):
        instance.migrate("hst-b", "stp-prep", {}, live=True)
    with pytest.raises(InvalidState):
        instance.migrate("hst-a", "stp-prep", {}, live=False)  # where it is already
    instance.migrate("hst-b", "stp-prep", {}, live=False)
    instance.migration_prepared("stp-prep", "stp-move")
    instance.complete_migration("stp-move")
    assert (instance.status, instance.host_id) == (STOPPED, "hst-b")


def test_a_failed_migration_stays_home_in_the_state_its_host_saw(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    instance.migrate("hst-b", "stp-prep", {}, live=True)
    assert not instance.fail_migration("stp-nope", "lost", RUNNING)
    assert instance.fail_migration("stp-prep", "no disk there", RUNNING)
    assert (instance.status, instance.host_id, instance.error) == (
        RUNNING,
        "hst-a",
        "no disk there",
    )
    assert instance.migration is None and instance.deadline is None


def test_a_migration_past_its_deadline_fails_as_error_on_its_source(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    instance.migrate("hst-b", "stp-prep", {}, live=True)
    assert not instance.time_out(manual.advance(DEADLINES[MIGRATING] - timedelta(seconds=1)))
    assert instance.time_out(manual.advance(timedelta(seconds=2)))
    assert (instance.status, instance.host_id) == (ERROR, "hst-a")
    assert instance.error is not None and "migrating did not finish" in instance.error
    assert names(instance)[-1] == "MigrationFailed"


def test_reinstall_ends_as_it_was_and_keeps_its_new_image(manual: clock.ManualClock) -> None:
    instance = running()
    instance.reinstall("img-2", "stp-re")
    assert instance.image_id == "img-2" and instance.resume == RUNNING
    assert not instance.host_reported("stp-other", RUNNING, None)
    assert instance.host_reported("stp-re", RUNNING, None)
    assert (instance.status, instance.image_id) == (RUNNING, "img-2")
    assert names(instance)[-2:] == ["ReinstallStarted", "Reinstalled"]


def test_a_password_reset_only_takes_a_hash_and_always_ends_running(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    with pytest.raises(ValueError, match="SHA-512"):
        instance.reset_password("root", "plain text", "stp-pw")
    instance.reset_password("root", HASH, "stp-pw")
    assert instance.status == RESETTING_PASSWORD and "password" not in instance.view()
    assert HASH not in str(instance.view())
    assert instance.host_reported("stp-pw", RUNNING, "no agent")
    assert (instance.status, instance.error, instance.password) == (RUNNING, "no agent", None)
    instance.reset_password("root", HASH, "stp-pw2")
    assert instance.time_out(manual.advance(DEADLINES[RESETTING_PASSWORD] + timedelta(1)))
    assert instance.status == RUNNING and names(instance)[-1] == "PasswordResetFailed"


def test_the_console_is_the_running_instance_s_on_its_own_host(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    with pytest.raises(ConsoleUnavailable, match="no console reported"):
        instance.vnc()
    instance.report_console("hst-a", "127.0.0.1", 5901)
    instance.report_console("hst-a", "127.0.0.1", 5901)  # the same again: no event
    assert instance.vnc() == {"host_id": "hst-a", "listen": "127.0.0.1", "port": 5901}
    assert names(instance).count("ConsoleReported") == 1
    instance.migrate("hst-b", "stp-prep", {}, live=True)
    instance.migration_prepared("stp-prep", "stp-move")
    instance.complete_migration("stp-move")
    with pytest.raises(ConsoleUnavailable):
        instance.vnc()  # the old host's port means nothing on the new one
    instance.stop("stp-stop")
    with pytest.raises(ConsoleUnavailable, match="needs it running"):
        instance.vnc()
