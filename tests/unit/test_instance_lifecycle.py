"""The instance aggregate's newer transitions, pure: migration, reinstall, password, console,
resize.

Every transitional state ends by its host's outcome for *its* step or by its deadline; these
check the rules the API tests cannot reach directly (stale steps, phases, deadlines).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain import clock
from domain.compute.hot_plug import Ceiling, ceiling
from domain.compute.instance import (
    DEADLINES,
    ERROR,
    MIGRATING,
    MOVING,
    PREPARING,
    RESETTING_PASSWORD,
    RESIZING,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
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
        max_vcpus=8,
        max_memory_mb=4096,
        gpu_count=0,
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


def resize(instance: Instance, vcpus: int, memory_mb: int, step: str = "stp-rs") -> str:
    return instance.resize(
        f"flv-{vcpus}-{memory_mb}",
        vcpus,
        memory_mb,
        step_id=step,
        maxima=ceiling(vcpus, memory_mb),
    )


def test_growing_within_the_room_is_hot_and_keeps_the_room(manual: clock.ManualClock) -> None:
    instance = running()  # 2 vCPUs, 1 GiB, room to 8 and 4 GiB
    assert resize(instance, 8, 4096) == "hot"
    assert (instance.status, instance.vcpus, instance.memory_mb) == (RESIZING, 8, 4096)
    assert (instance.max_vcpus, instance.max_memory_mb) == (8, 4096), "its guest's, not 4x"
    assert instance.deadline == START + DEADLINES[RESIZING]
    assert not instance.host_reported("stp-other", RUNNING, None)
    assert instance.host_reported("stp-rs", RUNNING, None)
    assert (instance.status, instance.step_id, instance.restart) == (RUNNING, None, False)


@pytest.mark.parametrize(
    ("vcpus", "memory_mb", "why"),
    [
        (1, 1024, "shrinks"),
        (9, 1024, "past the room"),
        (2, 1024 + 100, "not whole 128 MiB blocks"),
        (2, 8192, "past the memory room"),
    ],
)
def test_what_cannot_be_done_live_restarts_at_the_new_size(
    manual: clock.ManualClock, vcpus: int, memory_mb: int, why: str
) -> None:
    instance = running()
    assert resize(instance, vcpus, memory_mb) == "restart", why
    assert (instance.status, instance.restart) == (STOPPING, True)
    assert (instance.max_vcpus, instance.max_memory_mb) == ceiling(vcpus, memory_mb)
    assert instance.host_reported("stp-rs", STOPPED, None)
    assert (instance.status, instance.step_id) == (STARTING, "stp-rs.start")
    assert instance.restart is False
    assert instance.host_reported("stp-rs.start", RUNNING, None)
    assert (instance.status, instance.vcpus, instance.memory_mb) == (RUNNING, vcpus, memory_mb)


def test_a_guest_defined_before_hot_plug_existed_restarts(manual: clock.ManualClock) -> None:
    instance = running()
    instance.max_vcpus = instance.max_memory_mb = None  # as such an instance loads
    assert resize(instance, 4, 2048) == "restart"


def test_a_refused_hot_plug_falls_back_to_a_restart(manual: clock.ManualClock) -> None:
    instance = running()
    assert resize(instance, 4, 2048) == "hot"
    assert instance.host_reported("stp-rs", RUNNING, "no hot-plug here")
    assert (instance.status, instance.step_id, instance.restart) == (STOPPING, "stp-rs.cold", True)
    assert instance.error is None
    assert instance.host_reported("stp-rs.cold", STOPPED, None)
    assert instance.host_reported("stp-rs.cold.start", RUNNING, None)
    assert (instance.status, instance.vcpus) == (RUNNING, 4)


def test_a_resize_past_its_deadline_is_an_error_and_holds_no_restart(
    manual: clock.ManualClock,
) -> None:
    instance = running()
    resize(instance, 1, 1024)
    manual.advance(DEADLINES[STOPPING] + timedelta(seconds=1))
    assert instance.time_out(clock.now())
    assert (instance.status, instance.restart) == (ERROR, False)
    assert "stopping did not finish" in (instance.error or "")


def test_a_failed_stop_of_a_restart_is_an_error(manual: clock.ManualClock) -> None:
    instance = running()
    resize(instance, 1, 1024)
    assert instance.host_reported("stp-rs", RUNNING, "shutdown refused")
    assert (instance.status, instance.error, instance.restart) == (ERROR, "shutdown refused", False)


def test_a_stopped_instance_resizes_at_once_and_takes_the_new_room() -> None:
    instance = running()
    instance.stop("stp-stop")
    assert instance.host_reported("stp-stop", STOPPED, None)
    assert resize(instance, 16, 8192) == "cold"
    assert (instance.status, instance.vcpus, instance.max_vcpus) == (STOPPED, 16, 64)
    assert (instance.max_memory_mb) == 32768
    with pytest.raises(InvalidState):
        resize(instance, 16, 8192)


def test_nothing_else_happens_to_an_instance_while_it_resizes(manual: clock.ManualClock) -> None:
    instance = running()
    resize(instance, 4, 2048)
    for action in (lambda: instance.stop("s"), lambda: resize(instance, 8, 4096, "s2")):
        with pytest.raises(InvalidState):
            action()
    instance.evacuate("hst-b", "stp-evac", {}, "host lost")
    assert (instance.status, instance.host_id, instance.vcpus) == ("building", "hst-b", 4)


def test_the_hot_plug_room_is_four_times_the_size_within_limits() -> None:
    assert ceiling(2, 1024) == Ceiling(8, 4096)
    assert ceiling(32, 131072) == Ceiling(64, 262144)
    assert ceiling(96, 300000) == Ceiling(96, 300000), "never below the size itself"


def test_a_migration_that_timed_out_settles_only_on_its_two_hosts(
    manual: clock.ManualClock,
) -> None:
    instance = running("hst-a")
    instance.migrate("hst-b", "stp-m", {}, live=True)
    manual.advance(DEADLINES[MIGRATING] + timedelta(seconds=1))
    assert instance.time_out(clock.now())
    assert instance.status == ERROR and instance.unsettled == {
        "from_host_id": "hst-a",
        "to_host_id": "hst-b",
    }
    assert not instance.settle_migration("hst-c", RUNNING), "not one of its hosts"
    assert not instance.settle_migration("hst-b", "paused"), "an incoming guest is paused"
    assert instance.settle_migration("hst-b", RUNNING)
    assert (instance.status, instance.host_id, instance.error) == (RUNNING, "hst-b", None)
    assert instance.unsettled is None and not instance.settles_on("hst-a", RUNNING)


def test_an_error_of_another_kind_is_never_settled(manual: clock.ManualClock) -> None:
    instance = running("hst-a")
    instance.stop("stp-stop")
    assert instance.host_reported("stp-stop", STOPPED, "agent gone")
    assert instance.status == ERROR and not instance.settles_on("hst-a", RUNNING)
    failed = running("hst-a")
    failed.migrate("hst-b", "stp-m", {}, live=True)
    assert failed.fail_migration("stp-m", "refused", RUNNING)  # seen: stays home, running
    assert failed.unsettled is None
