"""Preemption plans: the fewest preemptible victims on one host that make room."""

from __future__ import annotations

from typing import Any

from domain.compute.scheduler import (
    GpuRequest,
    HostView,
    PreemptionPlan,
    place,
    place_batch,
    plan_preemption,
    released,
)
from domain.compute.scheduler.context import context_for
from domain.compute.scheduler.filters import rejected_by
from tests.unit.test_scheduler_builders import ask, gpu, host, instance


def crowded(id: str, *victims: tuple[str, int, bool], **fields: Any) -> HostView:
    """A 16-vCPU host filled by the given (id, vcpus, preemptible) instances."""
    placed = tuple(instance(i, vcpus=v, memory_mb=1024, preemptible=p) for i, v, p in victims)
    used = (
        sum(i.vcpus for i in placed),
        sum(i.memory_mb for i in placed),
        sum(i.disk_gb for i in placed),
    )
    return host(id, instances=placed, used=used, **fields)


def test_one_large_victim_beats_two_small_ones() -> None:
    hst = crowded("hst-a", ("i-1", 4, True), ("i-2", 4, True), ("i-3", 8, True))
    decision = place(ask(vcpus=8), [hst])
    assert not decision.placed
    assert decision.preemption is not None
    assert decision.preemption.victims == ("i-3",)
    assert decision.preemption.exhaustive
    assert decision.reason is not None and decision.reason.endswith(
        "; preempting 1 instance on hst-a makes room"
    )


def test_among_equal_counts_the_smallest_victims_win() -> None:
    hst = crowded("hst-a", ("i-1", 6, True), ("i-2", 3, True), ("i-3", 4, True), ("i-4", 3, False))
    plan = place(ask(vcpus=3), [hst]).preemption
    assert plan is not None and plan.victims == ("i-2",)
    assert plan.freed.vcpus == 3


def test_regular_instances_are_never_victims() -> None:
    hst = crowded("hst-a", ("i-1", 12, False), ("i-2", 2, True), ("i-3", 2, True))
    plan = place(ask(vcpus=4), [hst]).preemption
    assert plan is not None and plan.victims == ("i-2", "i-3")
    assert place(ask(vcpus=5), [hst]).preemption is None


def test_the_host_needing_fewest_victims_is_chosen() -> None:
    two = crowded("hst-a", ("i-1", 4, True), ("i-2", 4, True), ("i-3", 8, False))
    one = crowded("hst-b", ("i-4", 8, True), ("i-5", 8, False))
    plan = place(ask(vcpus=8), [two, one]).preemption
    assert plan is not None and (plan.host_id, plan.victims) == ("hst-b", ("i-4",))


def test_hosts_failing_other_rules_are_not_preempted() -> None:
    hst = crowded("hst-a", ("i-1", 16, True), labels={"disk": "hdd"})
    assert place(ask(required_labels={"disk": "nvme"}), [hst]).preemption is None
    assert place(ask(), [crowded("hst-a", ("i-1", 16, True), enabled=False)]).preemption is None


def test_preemptible_requests_preempt_nothing() -> None:
    hst = crowded("hst-a", ("i-1", 16, True))
    decision = place(ask(preemptible=True), [hst])
    assert not decision.placed and decision.preemption is None


def test_gpus_are_freed_from_victims_of_the_model() -> None:
    l4 = instance("i-1", vcpus=1, memory_mb=1, gpus=(gpu(1, "L4"),), preemptible=True)
    a100 = instance("i-2", vcpus=1, memory_mb=1, gpus=(gpu(2, "A100"),), preemptible=True)
    hst = host("hst-a", instances=(l4, a100), used=(2, 2, 40))
    plan = place(ask(gpus=GpuRequest(1, "A100")), [hst]).preemption
    assert plan is not None and plan.victims == ("i-2",)
    assert plan.freed_gpus == ("0000:02:00.0",)


def test_the_freed_host_passes_every_filter() -> None:
    hst = crowded("hst-a", ("i-1", 5, True), ("i-2", 5, True), ("i-3", 6, False))
    request = ask(vcpus=9)
    plan = place(request, [hst]).preemption
    assert plan is not None and plan.victims == ("i-1", "i-2")
    assert rejected_by(context_for(request, {}), released(hst, plan.victims)) is None


def test_a_batch_does_not_count_on_the_same_victims_twice() -> None:
    hst = crowded("hst-a", ("i-1", 8, True), ("i-2", 8, True))
    batch = place_batch(ask(vcpus=8), ["i-new1", "i-new2", "i-new3"], [hst])
    plans = [d.preemption for d in batch.decisions]
    assert [p.victims if p else None for p in plans] == [("i-1",), ("i-2",), None]
    assert {i.id for i in batch.hosts[0].instances} == {"i-new1", "i-new2"}


def test_past_its_budget_the_search_settles_for_a_greedy_plan() -> None:
    many = [(f"i-{n:02d}", 1, True) for n in range(16)]
    hst = crowded("hst-a", *many)
    request = ask(vcpus=8, memory_mb=1)
    plan = plan_preemption(request, [hst], budget=10)
    assert plan is not None and not plan.exhaustive
    assert len(plan.victims) == 8
    assert rejected_by(context_for(request, {}), released(hst, plan.victims)) is None
    assert plan_preemption(request, [hst], budget=100_000) == PreemptionPlan(
        host_id="hst-a",
        victims=tuple(f"i-{n:02d}" for n in range(8)),
        freed=plan.freed,
        freed_gpus=(),
    )
