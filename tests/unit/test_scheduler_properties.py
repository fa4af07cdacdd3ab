"""Scheduler properties under Hypothesis: capacity, server groups, determinism, preemption."""

from __future__ import annotations

from collections import Counter
from itertools import combinations

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.compute.scheduler import (
    Decision,
    GpuRequest,
    GroupPolicy,
    HostView,
    LiveLoad,
    PlacedInstance,
    PlacementRequest,
    PreemptionPlan,
    ServerGroup,
    place,
    place_batch,
    released,
)
from domain.compute.scheduler.context import context_for
from domain.compute.scheduler.filters import RESOURCE_FILTERS, rejected_by
from tests.unit.test_scheduler_builders import (
    ask,
    fleets,
    gpu,
    host,
    instance,
    requests,
    within_limits,
)

ROOMY = settings(deadline=None, max_examples=60)


@ROOMY
@given(
    fleet=fleets(),
    batches=st.lists(st.tuples(requests(), st.integers(1, 5)), min_size=1, max_size=10),
)
def test_capacity_times_overcommit_is_never_exceeded(
    fleet: list[HostView], batches: list[tuple[PlacementRequest, int]]
) -> None:
    view, devices = fleet, {h.id: {g.address for g in h.free_gpus} for h in fleet}
    serial = 0
    for request, count in batches:
        ids = [f"i-{serial + n}" for n in range(count)]
        serial += count
        before = {h.id: h for h in view}
        batch = place_batch(request, ids, view)
        view = list(batch.hosts)
        assert within_limits(view)
        for decision in batch.decisions:
            if decision.placed:
                assert decision.host_id is not None
                assert rejected_by(context_for(decision.request, {}), before[decision.host_id]) in (
                    None,
                    *RESOURCE_FILTERS,  # a later member of the batch may have filled it
                )
    for h in view:
        held = [g.address for i in h.instances for g in i.gpus]
        assert len(held) == len(set(held)), "a device is assigned twice"
        assert set(held) | {g.address for g in h.free_gpus} == devices[h.id]
        assert h.used.vcpus >= sum(i.vcpus for i in h.instances)


def roomy_hosts(count: int, loads: list[float]) -> list[HostView]:
    return [
        host(f"hst-{n:03d}", vcpus=64, memory_mb=262144, load=LiveLoad(loads[n % len(loads)], 0))
        for n in range(count)
    ]


def chunks(data: st.DataObject, total: int) -> list[int]:
    sizes = []
    while total:
        size = data.draw(st.integers(1, total))
        sizes.append(size)
        total -= size
    return sizes


@settings(deadline=None, max_examples=40)
@given(
    host_count=st.integers(1, 80),
    most=st.none() | st.integers(1, 3),
    loads=st.lists(st.floats(0, 4), min_size=1, max_size=5),
    data=st.data(),
)
def test_anti_affinity_holds_for_fifty_members(
    host_count: int, most: int | None, loads: list[float], data: st.DataObject
) -> None:
    view = roomy_hosts(host_count, loads)
    group = ServerGroup(id="sg-1", policy=GroupPolicy.ANTI_AFFINITY, max_per_host=most)
    groups = {"sg-1": group}
    decisions: list[Decision] = []
    serial = 0
    for size in chunks(data, 50):
        ids = [f"i-{serial + n:02d}" for n in range(size)]
        serial += size
        batch = place_batch(ask(server_group_id="sg-1"), ids, view, groups)
        view, groups = list(batch.hosts), batch.groups
        decisions.extend(batch.decisions)
    per_host = most or 1
    placed = Counter(d.host_id for d in decisions if d.placed)
    assert sum(placed.values()) == min(host_count * per_host, 50)
    assert max(placed.values()) <= per_host
    assert Counter(groups["sg-1"].members.values()) == placed
    for h in view:
        assert sum(i.server_group_id == "sg-1" for i in h.instances) <= per_host
    for failed in (d for d in decisions if not d.placed):
        assert failed.reason is not None and "(server_group_anti_affinity)" in failed.reason
        assert [r.filter for r in failed.rejections] == ["server_group_anti_affinity"]


@ROOMY
@given(fleet=fleets(min_hosts=2), size=st.integers(1, 20), first=st.none() | st.integers(0, 7))
def test_affinity_keeps_every_member_together(
    fleet: list[HostView], size: int, first: int | None
) -> None:
    members = {} if first is None else {"i-old": fleet[first % len(fleet)].id}
    groups = {"sg-1": ServerGroup(id="sg-1", policy=GroupPolicy.AFFINITY, members=members)}
    request = ask(vcpus=1, memory_mb=256, disk_gb=0, server_group_id="sg-1")
    batch = place_batch(request, [f"i-{n}" for n in range(size)], fleet, groups)
    together = {d.host_id for d in batch.decisions if d.placed} | set(members.values())
    assert len(together) <= 1
    assert set(batch.groups["sg-1"].members.values()) == together


@ROOMY
@given(
    fleet=fleets(),
    request=requests(),
    policy=st.sampled_from(list(GroupPolicy)),
    member_hosts=st.lists(st.integers(0, 7), max_size=4),
    data=st.data(),
)
def test_the_decision_depends_only_on_the_input(
    fleet: list[HostView],
    request: PlacementRequest,
    policy: GroupPolicy,
    member_hosts: list[int],
    data: st.DataObject,
) -> None:
    members = {f"i-m{n}": fleet[h % len(fleet)].id for n, h in enumerate(member_hosts)}
    groups = {"sg-1": ServerGroup(id="sg-1", policy=policy, members=members)}
    request = ask(
        "i-new",
        vcpus=request.vcpus,
        memory_mb=request.memory_mb,
        strategy=request.strategy,
        server_group_id="sg-1",
    )
    decision = place(request, fleet, groups)
    assert place(request, fleet, groups) == decision
    shuffled = data.draw(st.permutations(fleet))
    assert place(request, shuffled, groups) == decision


@st.composite
def crowded_fleets(draw: st.DrawFn) -> list[HostView]:
    """Hosts full of instances, some preemptible, some holding GPUs."""
    view = []
    for n in range(draw(st.integers(1, 4))):
        placed = []
        for k in range(draw(st.integers(0, 6))):
            placed.append(
                instance(
                    f"i-{n}{k}",
                    vcpus=draw(st.integers(1, 6)),
                    memory_mb=draw(st.integers(256, 8192)),
                    disk_gb=draw(st.integers(0, 50)),
                    gpus=tuple(
                        gpu(16 + k * 4 + g, draw(st.sampled_from(["A100", "L4"])))
                        for g in range(draw(st.integers(0, 1)))
                    ),
                    preemptible=draw(st.booleans()),
                )
            )
        used = (
            sum(i.vcpus for i in placed),
            sum(i.memory_mb for i in placed),
            sum(i.disk_gb for i in placed),
        )
        view.append(
            host(
                f"hst-{n}",
                vcpus=max(1, used[0] + draw(st.integers(-2, 2))),
                memory_mb=max(512, used[1] + draw(st.integers(-2048, 2048))),
                disk_gb=max(0, used[2] + draw(st.integers(-20, 20))),
                used=used,
                instances=tuple(placed),
                free_gpus=tuple(gpu(g, "L4") for g in range(draw(st.integers(0, 1)))),
                enabled=draw(st.integers(0, 5)) > 0,
            )
        )
    return view


def victim_sets(h: HostView) -> list[tuple[PlacedInstance, ...]]:
    preemptible = [i for i in h.instances if i.preemptible]
    return [c for k in range(1, len(preemptible) + 1) for c in combinations(preemptible, k)]


def rank(
    h: HostView, victims: tuple[PlacedInstance, ...]
) -> tuple[int, int, int, int, int, str, tuple[str, ...]]:
    return (
        len(victims),
        sum(v.vcpus for v in victims),
        sum(v.memory_mb for v in victims),
        sum(v.disk_gb for v in victims),
        sum(len(v.gpus) for v in victims),
        h.id,
        tuple(sorted(v.id for v in victims)),
    )


@settings(deadline=None, max_examples=150)
@given(
    fleet=crowded_fleets(),
    vcpus=st.integers(1, 12),
    memory_mb=st.integers(1, 16384),
    disk_gb=st.integers(0, 60),
    gpus=st.none() | st.builds(GpuRequest, st.integers(1, 2), st.sampled_from([None, "A100"])),
)
def test_preemption_plans_are_minimal_and_really_make_room(
    fleet: list[HostView], vcpus: int, memory_mb: int, disk_gb: int, gpus: GpuRequest | None
) -> None:
    request = ask(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb, gpus=gpus)
    ctx = context_for(request, {})
    decision = place(request, fleet)
    if decision.placed:
        return
    # The oracle: every set of preemptible instances on every host that only lacks room.
    fits = [
        rank(h, victims)
        for h in fleet
        if rejected_by(ctx, h) in RESOURCE_FILTERS
        for victims in victim_sets(h)
        if rejected_by(ctx, released(h, {v.id for v in victims})) is None
    ]
    plan = decision.preemption
    if plan is None:
        assert fits == []
        return
    assert plan.exhaustive
    chosen = next(h for h in fleet if h.id == plan.host_id)
    on_host = {i.id: i for i in chosen.instances}
    assert all(on_host[v].preemptible for v in plan.victims)
    assert rejected_by(ctx, released(chosen, set(plan.victims))) is None
    assert rank(chosen, tuple(on_host[v] for v in plan.victims)) == min(fits)
    assert plan == PreemptionPlan(
        host_id=plan.host_id,
        victims=plan.victims,
        freed=plan.freed,
        freed_gpus=tuple(sorted(g.address for v in plan.victims for g in on_host[v].gpus)),
    )
    assert plan.freed.vcpus == sum(on_host[v].vcpus for v in plan.victims)
