"""Scheduler filters, one rule at a time."""

from __future__ import annotations

from typing import Any

import pytest

from domain.compute.scheduler import GpuRequest, GroupPolicy, ServerGroup
from domain.compute.scheduler import filters as f
from domain.compute.scheduler.context import context_for
from domain.errors import NotFound, ValidationFailed
from tests.unit.test_scheduler_builders import ask, gpu, host, verdict


def test_region_keeps_hosts_of_the_requested_region() -> None:
    assert verdict(f.REGION, ask(), host()) is True
    assert verdict(f.REGION, ask(region_id="rgn-2"), host()) is False


def test_cluster_applies_only_when_a_cluster_is_asked_for() -> None:
    assert verdict(f.CLUSTER, ask(), host(cluster_id="cls-9")) is None
    assert verdict(f.CLUSTER, ask(cluster_id="cls-9"), host(cluster_id="cls-9")) is True
    assert verdict(f.CLUSTER, ask(cluster_id="cls-9"), host()) is False


def test_architecture_must_match() -> None:
    assert verdict(f.ARCHITECTURE, ask(), host()) is True
    assert verdict(f.ARCHITECTURE, ask(architecture="aarch64"), host()) is False


@pytest.mark.parametrize(
    "flags",
    [{"enabled": False}, {"healthy": False}, {"maintenance": True}],
    ids=["disabled", "unhealthy", "maintenance"],
)
def test_available_rejects_disabled_unhealthy_and_maintenance(flags: dict[str, Any]) -> None:
    assert verdict(f.AVAILABLE, ask(), host()) is True
    assert verdict(f.AVAILABLE, ask(), host(**flags)) is False


def test_labels_need_every_required_key_with_its_value() -> None:
    labelled = host(labels={"disk": "nvme", "zone": "a"})
    assert verdict(f.LABELS, ask(), labelled) is None
    assert verdict(f.LABELS, ask(required_labels={"disk": "nvme"}), labelled) is True
    assert verdict(f.LABELS, ask(required_labels={"disk": "hdd"}), labelled) is False
    assert verdict(f.LABELS, ask(required_labels={"disk": "nvme", "rack": "1"}), labelled) is False


def group(
    policy: GroupPolicy, members: dict[str, str], most: int | None = None
) -> dict[str, ServerGroup]:
    return {"sg-1": ServerGroup(id="sg-1", policy=policy, max_per_host=most, members=members)}


def test_affinity_sends_members_to_the_host_of_the_first() -> None:
    request = ask(server_group_id="sg-1")
    empty = group(GroupPolicy.AFFINITY, {})
    assert verdict(f.SERVER_GROUP_AFFINITY, request, host(), empty) is None
    started = group(GroupPolicy.AFFINITY, {"i-0": "hst-a"})
    assert verdict(f.SERVER_GROUP_AFFINITY, request, host("hst-a"), started) is True
    assert verdict(f.SERVER_GROUP_AFFINITY, request, host("hst-b"), started) is False


def test_anti_affinity_keeps_members_apart() -> None:
    request = ask(server_group_id="sg-1")
    groups = group(GroupPolicy.ANTI_AFFINITY, {"i-0": "hst-a"})
    assert verdict(f.SERVER_GROUP_ANTI_AFFINITY, request, host("hst-a"), groups) is False
    assert verdict(f.SERVER_GROUP_ANTI_AFFINITY, request, host("hst-b"), groups) is True


def test_anti_affinity_with_max_per_host_allows_that_many() -> None:
    request = ask(server_group_id="sg-1")
    one = group(GroupPolicy.ANTI_AFFINITY, {"i-0": "hst-a"}, most=2)
    two = group(GroupPolicy.ANTI_AFFINITY, {"i-0": "hst-a", "i-1": "hst-a"}, most=2)
    assert verdict(f.SERVER_GROUP_ANTI_AFFINITY, request, host("hst-a"), one) is True
    assert verdict(f.SERVER_GROUP_ANTI_AFFINITY, request, host("hst-a"), two) is False
    assert verdict(f.SERVER_GROUP_MAX_PER_HOST, request, host("hst-a"), two) is None


def test_max_per_host_caps_the_other_policies() -> None:
    request = ask(server_group_id="sg-1")
    members = {"i-0": "hst-a", "i-1": "hst-a"}
    assert (
        verdict(
            f.SERVER_GROUP_MAX_PER_HOST,
            request,
            host("hst-a"),
            group(GroupPolicy.SOFT_AFFINITY, members),
        )
        is None
    )
    capped = group(GroupPolicy.SOFT_AFFINITY, members, most=2)
    assert verdict(f.SERVER_GROUP_MAX_PER_HOST, request, host("hst-a"), capped) is False
    assert verdict(f.SERVER_GROUP_MAX_PER_HOST, request, host("hst-b"), capped) is True


def test_group_filters_stay_out_of_the_way_without_a_group() -> None:
    for flt in (f.SERVER_GROUP_AFFINITY, f.SERVER_GROUP_ANTI_AFFINITY, f.SERVER_GROUP_MAX_PER_HOST):
        assert verdict(flt, ask(), host()) is None


def test_an_unknown_server_group_is_an_error() -> None:
    with pytest.raises(NotFound):
        context_for(ask(server_group_id="sg-404"), {})


def test_capacity_multiplies_cpu_and_memory_by_the_overcommit() -> None:
    small = host(
        vcpus=4, memory_mb=4096, used=(6, 5000, 0), cpu_overcommit=2.0, memory_overcommit=1.5
    )
    assert verdict(f.CAPACITY, ask(vcpus=2, memory_mb=1144), small) is True
    assert verdict(f.CAPACITY, ask(vcpus=3, memory_mb=1144), small) is False
    assert verdict(f.CAPACITY, ask(vcpus=2, memory_mb=1145), small) is False


def test_capacity_rounds_a_fractional_limit_down() -> None:
    odd = host(vcpus=3, used=(3, 0, 0), cpu_overcommit=1.5)  # 4.5 vCPUs may be sold: 4
    assert verdict(f.CAPACITY, ask(vcpus=1), odd) is True
    assert verdict(f.CAPACITY, ask(vcpus=2), odd) is False


def test_disk_is_never_overcommitted() -> None:
    full = host(disk_gb=100, used=(0, 0, 80), cpu_overcommit=4.0, memory_overcommit=4.0)
    assert verdict(f.CAPACITY, ask(disk_gb=20), full) is True
    assert verdict(f.CAPACITY, ask(disk_gb=21), full) is False


def test_gpus_count_free_devices_of_the_model() -> None:
    mixed = host(free_gpus=(gpu(1, "A100"), gpu(2, "L4"), gpu(3, "L4")))
    assert verdict(f.GPUS, ask(), mixed) is None
    assert verdict(f.GPUS, ask(gpus=GpuRequest(3)), mixed) is True
    assert verdict(f.GPUS, ask(gpus=GpuRequest(4)), mixed) is False
    assert verdict(f.GPUS, ask(gpus=GpuRequest(2, "L4")), mixed) is True
    assert verdict(f.GPUS, ask(gpus=GpuRequest(2, "A100")), mixed) is False


def test_rejected_by_names_the_first_failing_filter() -> None:
    ctx = context_for(ask(vcpus=64), {})
    assert f.rejected_by(ctx, host()) == "capacity"
    assert f.rejected_by(ctx, host(enabled=False)) == "available"
    assert f.rejected_by(context_for(ask(), {}), host()) is None


def test_resource_filters_run_last() -> None:
    names = [flt.name for flt in f.FILTERS]
    assert set(names[-len(f.RESOURCE_FILTERS) :]) == f.RESOURCE_FILTERS
    assert len(set(names)) == len(names)


def test_requests_refuse_impossible_sizes() -> None:
    with pytest.raises(ValidationFailed):
        ask(vcpus=0)
    with pytest.raises(ValidationFailed):
        ask(disk_gb=-1)
    with pytest.raises(ValidationFailed):
        GpuRequest(0)
