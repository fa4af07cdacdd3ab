"""Choosing among the near-best hosts: spread over equals, deterministic, soft rules kept."""

from __future__ import annotations

from domain.compute.scheduler import (
    GroupPolicy,
    SchedulerSettings,
    ServerGroup,
    place,
)
from tests.unit.test_scheduler_builders import ask, host, instance

SUBSET = SchedulerSettings(subset_size=8)


def test_equal_hosts_share_the_choice_by_instance_id() -> None:
    hosts = [host(f"hst-{n:02d}") for n in range(20)]
    chosen = {place(ask(f"i-{k}"), hosts, settings=SUBSET).host_id for k in range(200)}
    assert len(chosen) == 8  # the eight best (all equal, first by id), not just the first
    assert chosen == {f"hst-{n:02d}" for n in range(8)}
    again = [place(ask(f"i-{k}"), hosts, settings=SUBSET).host_id for k in range(50)]
    assert again == [place(ask(f"i-{k}"), hosts, settings=SUBSET).host_id for k in range(50)]


def test_a_clearly_better_host_is_still_chosen() -> None:
    busy = [host(f"hst-{n:02d}", used=(14, 60000, 0)) for n in range(10)]
    idle = host("hst-zz")
    assert {place(ask(f"i-{k}"), [*busy, idle], settings=SUBSET).host_id for k in range(50)} == {
        "hst-zz"
    }


def test_soft_affinity_is_not_traded_for_spreading() -> None:
    members = {"i-m": "hst-05"}
    group = ServerGroup(id="sg-1", policy=GroupPolicy.SOFT_AFFINITY, members=members)
    hosts = [
        host(f"hst-{n:02d}", instances=(instance("i-m"),) if n == 5 else ()) for n in range(10)
    ]
    for k in range(50):
        request = ask(f"i-{k}", server_group_id="sg-1")
        assert place(request, hosts, {"sg-1": group}, SUBSET).host_id == "hst-05"
