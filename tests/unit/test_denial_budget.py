"""The per-source budget of denials recorded one by one."""

from __future__ import annotations

from datetime import UTC, datetime

from api.services.denial_budget import MAX_TARGETS, OTHER_SOURCES, SourceBudget

AT = datetime(2026, 1, 1, tzinfo=UTC)


def test_a_source_past_its_limit_is_counted_per_target_until_its_window_ends() -> None:
    budget = SourceBudget(2, 10.0)
    admitted = [budget.admit("10.0.0.1", ("tnt-a", None), 0.0, AT) for _ in range(5)]
    assert admitted == [True, True, False, False, False]
    assert budget.admit("10.0.0.2", ("tnt-a", None), 1.0, AT), "another source, its own budget"
    budget.admit("10.0.0.1", (None, "prj-x"), 2.0, AT)
    assert budget.closed(9.9) == [] and budget.dropping
    counts = {(d.source, d.target): d.count for d in budget.closed(10.0)}
    assert counts == {("10.0.0.1", ("tnt-a", None)): 3, ("10.0.0.1", (None, "prj-x")): 1}
    assert budget.admit("10.0.0.1", ("tnt-a", None), 10.5, AT), "a new window"


def test_memory_stays_bounded() -> None:
    budget = SourceBudget(1, 10.0, max_sources=2)
    for source in ("a", "b", "c", "d"):
        budget.admit(source, (None, None), 0.0, AT)
    for n in range(MAX_TARGETS + 10):
        budget.admit("a", (None, f"prj-{n}"), 0.0, AT)
    counts = budget.drain()
    assert {d.source for d in counts} == {"a", OTHER_SOURCES}
    assert sum(d.count for d in counts if d.source == "a") == MAX_TARGETS + 10
    assert len([d for d in counts if d.source == "a"]) == MAX_TARGETS + 1
    assert not budget.dropping
