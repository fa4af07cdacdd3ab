"""Placement decisions: the record, GPU assignment, batches, and why nothing fits."""

from __future__ import annotations

import msgspec
import pytest

from domain.compute.scheduler import (
    Decision,
    GpuRequest,
    GroupPolicy,
    Resources,
    SchedulerSettings,
    ServerGroup,
    Strategy,
    carried_out,
    claimed,
    place,
    place_batch,
    released,
)
from domain.errors import ValidationFailed
from tests.unit.test_scheduler_builders import ask, gpu, host, instance, within_limits


def test_the_decision_records_rejections_scores_and_choice() -> None:
    hosts = [
        host("hst-a"),
        host("hst-b", region_id="rgn-2"),
        host("hst-c", enabled=False),
        host("hst-d", vcpus=1),
        host("hst-e", used=(8, 0, 0)),
    ]
    decision = place(ask(), hosts)
    assert decision.placed and decision.host_id == "hst-a"
    assert (decision.considered, decision.candidates) == (5, 2)
    assert [(r.filter, r.count, r.host_ids) for r in decision.rejections] == [
        ("region", 1, ("hst-b",)),
        ("available", 1, ("hst-c",)),
        ("capacity", 1, ("hst-d",)),
    ]
    assert [s.host_id for s in decision.scores] == ["hst-a", "hst-e"]
    assert decision.scores[0].weights.keys() == {"cpu_load", "memory_available", "fit"}
    assert decision.reason is None and decision.preemption is None


def test_the_decision_survives_the_trip_into_an_event() -> None:
    groups = {
        "sg-1": ServerGroup(id="sg-1", policy=GroupPolicy.SOFT_AFFINITY, members={"i-0": "hst-a"})
    }
    hosts = [host("hst-a", free_gpus=(gpu(1),)), host("hst-b", enabled=False)]
    decision = place(ask(gpus=GpuRequest(1), server_group_id="sg-1"), hosts, groups)
    for codec in (msgspec.json, msgspec.msgpack):
        assert codec.decode(codec.encode(decision), type=Decision) == decision


def test_the_record_lists_a_bounded_number_of_hosts() -> None:
    hosts = [host(f"hst-{n:03d}") for n in range(30)] + [
        host(f"hst-x{n:02d}", region_id="rgn-2") for n in range(30)
    ]
    settings = SchedulerSettings(recorded_scores=5, recorded_rejections=3)
    decision = place(ask(), hosts[::-1], settings=settings)
    assert [s.host_id for s in decision.scores] == [f"hst-{n:03d}" for n in range(5)]
    assert decision.rejections[0].count == 30
    assert decision.rejections[0].host_ids == ("hst-x00", "hst-x01", "hst-x02")
    everything = place(ask(), hosts, settings=SchedulerSettings(recorded_scores=None))
    assert len(everything.scores) == 30


def test_gpus_are_assigned_lowest_address_first_of_the_model() -> None:
    devices = (gpu(4, "L4"), gpu(1, "A100"), gpu(3, "L4"), gpu(2, "L4"))
    decision = place(ask(gpus=GpuRequest(2, "L4")), [host(free_gpus=devices)])
    assert decision.gpu_addresses == ("0000:02:00.0", "0000:03:00.0")
    after = carried_out(host(free_gpus=devices), decision)
    assert [g.address for g in after.free_gpus] == ["0000:04:00.0", "0000:01:00.0"]
    assert after.instances[0].gpus == (gpu(3, "L4"), gpu(2, "L4"))


def test_a_claim_and_its_release_cancel_out() -> None:
    devices = (gpu(1, "L4"), gpu(2, "L4"))
    before = host(used=(3, 3000, 30), free_gpus=devices)
    request = ask("i-9", gpus=GpuRequest(1), preemptible=True, server_group_id="sg-1")
    after = claimed(before, request, ["0000:02:00.0"])
    assert after.used == Resources(5, 5048, 50)
    assert after.free_gpus == (gpu(1, "L4"),)
    assert after.instances == (
        instance(
            "i-9", tenant_id="tnt-1", gpus=(gpu(2, "L4"),), preemptible=True, server_group_id="sg-1"
        ),
    )
    assert released(after, {"i-9"}) == before


def test_nowhere_to_go_says_why() -> None:
    hosts = [host("hst-a", enabled=False), host("hst-b", vcpus=1), host("hst-c", vcpus=1)]
    decision = place(ask(), hosts)
    assert not decision.placed and decision.scores == ()
    assert decision.reason == (
        "no host can take instance i-1: 1 host disabled, unhealthy or in maintenance "
        "(available); 2 hosts short of vCPUs, memory or disk (capacity)"
    )
    assert decision.preemption is None


def test_an_empty_view_says_so() -> None:
    decision = place(ask(), [])
    assert decision.reason == "no host can take instance i-1: the scheduler's view holds no hosts"


def test_a_batch_sees_its_own_claims() -> None:
    hosts = [host("hst-a", vcpus=4), host("hst-b", vcpus=4)]
    batch = place_batch(ask(vcpus=2), [f"i-{n}" for n in range(5)], hosts)
    placed = [d.host_id for d in batch.decisions]
    assert sorted(str(p) for p in placed[:4]) == ["hst-a", "hst-a", "hst-b", "hst-b"]
    assert placed[4] is None and batch.decisions[4].reason is not None
    assert "capacity" in batch.decisions[4].reason
    assert [h.used.vcpus for h in batch.hosts] == [4, 4]
    assert within_limits(batch.hosts)
    assert [d.request.instance_id for d in batch.decisions] == [f"i-{n}" for n in range(5)]


def test_a_batch_spreads_by_default_and_packs_when_asked() -> None:
    hosts = [host("hst-a"), host("hst-b")]
    spread = place_batch(ask(), ["i-1", "i-2"], hosts)
    assert [d.host_id for d in spread.decisions] == ["hst-a", "hst-b"]
    packed = place_batch(ask(strategy=Strategy.PACK), ["i-1", "i-2"], hosts)
    assert [d.host_id for d in packed.decisions] == ["hst-a", "hst-a"]


def test_a_batch_keeps_anti_affinity_and_records_membership() -> None:
    groups = {"sg-1": ServerGroup(id="sg-1", policy=GroupPolicy.ANTI_AFFINITY)}
    hosts = [host("hst-a"), host("hst-b")]
    batch = place_batch(ask(server_group_id="sg-1"), ["i-1", "i-2", "i-3"], hosts, groups)
    assert [d.host_id for d in batch.decisions] == ["hst-a", "hst-b", None]
    assert batch.groups["sg-1"].members == {"i-1": "hst-a", "i-2": "hst-b"}
    assert batch.decisions[2].reason == (
        "no host can take instance i-3: 2 hosts already holding as many members of the "
        "anti-affinity group as it allows per host (server_group_anti_affinity)"
    )


def test_a_batch_names_each_instance_once() -> None:
    with pytest.raises(ValidationFailed):
        place_batch(ask(), ["i-1", "i-1"], [host()])


def test_the_input_view_is_left_alone() -> None:
    hosts = [host("hst-a")]
    groups = {"sg-1": ServerGroup(id="sg-1", policy=GroupPolicy.AFFINITY)}
    place_batch(ask(server_group_id="sg-1"), ["i-1"], hosts, groups)
    assert hosts[0].used.vcpus == 0 and hosts[0].instances == ()
    assert groups["sg-1"].members == {}
