"""Scheduler weighers: normalisation, each preference, multipliers and the tie-break."""

from __future__ import annotations

import pytest

from domain.compute.scheduler import (
    GroupPolicy,
    LiveLoad,
    Multipliers,
    SchedulerSettings,
    ServerGroup,
    Strategy,
    normalise,
    place,
)
from domain.compute.scheduler import weighers as w
from domain.compute.scheduler.context import context_for
from tests.unit.test_scheduler_builders import ask, host

ONLY_FIT = Multipliers(cpu_load=0, memory_available=0, fit=1)
ONLY_LOAD = Multipliers(cpu_load=1, memory_available=0, fit=0)


def only(multipliers: Multipliers) -> SchedulerSettings:
    return SchedulerSettings(multipliers=multipliers, recorded_scores=None)


def test_normalise_scales_to_the_unit_interval() -> None:
    assert normalise([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert normalise([-1.0, -3.0]) == [1.0, 0.0]


def test_normalise_gives_equal_scores_no_weight() -> None:
    assert normalise([5.0, 5.0]) == [0.0, 0.0]
    assert normalise([]) == []


def test_normalise_scores_unknowns_as_the_worst() -> None:
    assert normalise([None, 1.0, 3.0]) == [0.0, 0.0, 1.0]
    assert normalise([None, 2.0, 2.0]) == [0.0, 1.0, 1.0]
    assert normalise([None, None]) == [0.0, 0.0]


def test_cpu_load_prefers_the_least_loaded_host() -> None:
    hosts = [
        host("hst-a", load=LiveLoad(0.9, 1000)),
        host("hst-b", load=LiveLoad(0.1, 1000)),
        host("hst-c"),
    ]
    decision = place(ask(), hosts, settings=only(ONLY_LOAD))
    assert decision.host_id == "hst-b"
    assert [s.weights["cpu_load"] for s in decision.scores] == [1.0, 0.0, 0.0]
    assert [s.host_id for s in decision.scores] == ["hst-b", "hst-a", "hst-c"]


def test_a_garbled_load_scores_as_the_worst_without_spoiling_the_others() -> None:
    hosts = [
        host("hst-a", load=LiveLoad(float("nan"), 1000)),
        host("hst-b", load=LiveLoad(0.8, 1000)),
        host("hst-c", load=LiveLoad(0.2, 1000)),
    ]
    decision = place(ask(), hosts, settings=only(ONLY_LOAD))
    assert [(s.host_id, s.weights["cpu_load"]) for s in decision.scores] == [
        ("hst-c", 1.0),
        ("hst-a", 0.0),
        ("hst-b", 0.0),
    ]


def test_memory_available_counts_the_share_of_the_host_left() -> None:
    weight = w.MEMORY_AVAILABLE.prepare(context_for(ask(), {}))
    assert weight is not None
    assert weight(host(memory_mb=8192, load=LiveLoad(0.5, 2048))) == 0.25
    assert weight(host()) is None
    settings = only(Multipliers(cpu_load=0, memory_available=1, fit=0))
    hosts = [
        host("hst-a", memory_mb=65536, load=LiveLoad(0, 16384)),
        host("hst-b", memory_mb=8192, load=LiveLoad(0, 8000)),
    ]
    assert place(ask(), hosts, settings=settings).host_id == "hst-b"


def test_spread_prefers_the_emptiest_host_and_pack_the_fullest() -> None:
    hosts = [host("hst-a", used=(2, 8192, 0)), host("hst-b", used=(12, 49152, 0))]
    assert place(ask(), hosts, settings=only(ONLY_FIT)).host_id == "hst-a"
    packed = place(ask(strategy=Strategy.PACK), hosts, settings=only(ONLY_FIT))
    assert packed.host_id == "hst-b"


def test_fit_counts_overcommit_in_the_room_left() -> None:
    hosts = [host("hst-a", used=(8, 0, 0), cpu_overcommit=4.0), host("hst-b", used=(4, 0, 0))]
    assert place(ask(), hosts, settings=only(ONLY_FIT)).host_id == "hst-a"


def members(policy: GroupPolicy, on: dict[str, str]) -> dict[str, ServerGroup]:
    return {"sg-1": ServerGroup(id="sg-1", policy=policy, members=on)}


def test_soft_affinity_joins_the_members_over_a_quieter_host() -> None:
    hosts = [
        host("hst-a", load=LiveLoad(3.0, 0), used=(10, 40000, 0)),
        host("hst-b", load=LiveLoad(0.0, 65536)),
    ]
    groups = members(GroupPolicy.SOFT_AFFINITY, {"i-0": "hst-a"})
    decision = place(ask(server_group_id="sg-1"), hosts, groups)
    assert decision.host_id == "hst-a"
    assert decision.scores[0].weights["soft_affinity"] == 1.0


def test_soft_anti_affinity_avoids_members_while_it_can() -> None:
    hosts = [host("hst-a", load=LiveLoad(0.0, 65536)), host("hst-b", load=LiveLoad(3.0, 0))]
    groups = members(GroupPolicy.SOFT_ANTI_AFFINITY, {"i-0": "hst-a"})
    assert place(ask(server_group_id="sg-1"), hosts, groups).host_id == "hst-b"
    crowded = members(GroupPolicy.SOFT_ANTI_AFFINITY, {"i-0": "hst-a", "i-1": "hst-b"})
    decision = place(ask(server_group_id="sg-1"), hosts, crowded)
    assert decision.host_id == "hst-a", "soft: with members everywhere it still places"


def test_soft_weighers_apply_only_to_their_policy() -> None:
    ctx = context_for(ask(server_group_id="sg-1"), members(GroupPolicy.AFFINITY, {}))
    assert w.SOFT_AFFINITY.prepare(ctx) is None
    assert w.SOFT_ANTI_AFFINITY.prepare(ctx) is None
    assert w.SOFT_AFFINITY.prepare(context_for(ask(), {})) is None


def test_a_zero_multiplier_leaves_its_weigher_out() -> None:
    decision = place(ask(), [host()], settings=only(ONLY_FIT))
    assert decision.scores[0].weights.keys() == {"fit"}


def test_multipliers_trade_preferences_against_each_other() -> None:
    busy_but_empty = host("hst-a", load=LiveLoad(2.0, 0))
    quiet_but_full = host("hst-b", used=(14, 60000, 0), load=LiveLoad(0.0, 0))
    hosts = [busy_but_empty, quiet_but_full]
    favour_fit = only(Multipliers(cpu_load=1, memory_available=0, fit=3))
    favour_load = only(Multipliers(cpu_load=3, memory_available=0, fit=1))
    assert place(ask(), hosts, settings=favour_fit).host_id == "hst-a"
    assert place(ask(), hosts, settings=favour_load).host_id == "hst-b"
    decision = place(ask(), hosts, settings=favour_load)
    assert decision.scores[0].total == pytest.approx(3.0)


def test_ties_go_to_the_lowest_host_id_whatever_the_order() -> None:
    hosts = [host("hst-c"), host("hst-a"), host("hst-b")]
    assert place(ask(), hosts).host_id == "hst-a"
    assert place(ask(), hosts[::-1]).host_id == "hst-a"
    assert [s.host_id for s in place(ask(), hosts).scores] == ["hst-a", "hst-b", "hst-c"]
