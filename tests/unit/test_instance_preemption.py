"""Preempting an instance, pure: who may be preempted, from which states, and what follows."""

from __future__ import annotations

import pytest

from domain import clock
from domain.compute.instance import MIGRATING, RECYCLED, RUNNING, STOPPED, STOPPING, Instance
from domain.errors import InvalidState


def placed(preemptible: bool = True) -> Instance:
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
        preemptible=preemptible,
        server_group_id=None,
        requested_at=clock.now(),
        charge_mode="on_demand",
        max_vcpus=8,
        max_memory_mb=4096,
        gpu_count=0,
    )
    instance.schedule("hst-a", "stp-build", {})
    assert instance.host_reported("stp-build", RUNNING, None)
    return instance


def names(instance: Instance) -> list[str]:
    return [type(e).__name__ for e in instance.collect_events()]


def test_a_running_victim_stops_through_a_step_and_ends_stopped() -> None:
    instance = placed()
    instance.collect_events()
    instance.preempt("pmt-1", "room for a regular instance", "stp-stop")
    assert names(instance) == ["Preempted", "StepStarted"]
    assert (instance.status, instance.step_id, instance.host_id) == (STOPPING, "stp-stop", "hst-a")
    assert instance.preempted == {
        "host_id": "hst-a",
        "preemption_id": "pmt-1",
        "reason": "room for a regular instance",
    }
    assert instance.host_reported("stp-stop", STOPPED, None)
    assert instance.status == STOPPED
    instance.start("stp-start")  # it may start again (its host claim is the caller's)


@pytest.mark.parametrize("status", [STOPPED, RECYCLED])
def test_a_victim_that_runs_nothing_keeps_its_status(status: str) -> None:
    instance = placed()
    instance.stop("stp-stop")
    assert instance.host_reported("stp-stop", STOPPED, None)
    if status == RECYCLED:
        instance.delete("stp-delete")
        assert instance.host_reported("stp-delete", STOPPED, None)
    instance.collect_events()
    instance.preempt("pmt-1", "room", "stp-unused")
    assert names(instance) == ["Preempted"]
    assert instance.status == status and instance.step_id is None


def test_regular_and_migrating_instances_are_not_preempted() -> None:
    with pytest.raises(InvalidState):
        placed(preemptible=False).preempt("pmt-1", "room", "stp-1")
    moving = placed()
    moving.migrate("hst-b", "stp-move", {}, live=True)
    assert moving.status == MIGRATING
    with pytest.raises(InvalidState):
        moving.preempt("pmt-1", "room", "stp-1")
