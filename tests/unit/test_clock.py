"""The clock in force: the wall clock by default, a ManualClock inside ``using``."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest
from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.metadata import Actor, CommandContext

START = datetime(2025, 1, 1, 9, 30, tzinfo=UTC)


def test_the_default_is_the_wall_clock_in_utc() -> None:
    before = datetime.now(tz=UTC)
    now = clock.now()
    after = datetime.now(tz=UTC)
    assert before <= now <= after
    assert now.utcoffset() == timedelta(0)


def test_a_manual_clock_moves_only_when_told() -> None:
    manual = clock.ManualClock(START)
    assert manual.now() == START
    assert manual.now() == START
    assert manual.advance(timedelta(seconds=90)) == START + timedelta(seconds=90)
    assert manual.now() == START + timedelta(seconds=90)
    manual.set(START - timedelta(days=1))
    assert manual.now() == START - timedelta(days=1)


def test_a_manual_clock_needs_a_timezone() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.ManualClock(datetime(2025, 1, 1))
    assert clock.ManualClock(datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2)))).now()


def test_using_puts_a_clock_in_force_until_the_block_ends() -> None:
    manual = clock.ManualClock(START)
    with clock.using(manual) as in_force:
        assert in_force is manual
        assert clock.now() == START
        manual.advance(timedelta(minutes=1))
        assert clock.now() == START + timedelta(minutes=1)
    assert clock.now() != manual.now()
    assert abs(clock.now() - datetime.now(tz=UTC)) < timedelta(seconds=5)


def test_nested_clocks_restore_the_outer_one() -> None:
    outer = clock.ManualClock(START)
    inner = clock.ManualClock(START + timedelta(days=30))
    with clock.using(outer):
        with clock.using(inner):
            assert clock.now() == inner.now()
            with clock.using(outer):
                assert clock.now() == START
            assert clock.now() == inner.now()
        assert clock.now() == START
    assert clock.now() > START + timedelta(days=300)  # the wall clock again


def test_the_clock_is_restored_when_the_block_raises() -> None:
    outer = clock.ManualClock(START)
    with clock.using(outer):
        with pytest.raises(RuntimeError), clock.using(clock.ManualClock(START + timedelta(1))):
            raise RuntimeError("boom")
        assert clock.now() == START


async def test_tasks_inherit_the_clock_but_do_not_leak_theirs() -> None:
    manual = clock.ManualClock(START)
    other = clock.ManualClock(START + timedelta(hours=5))

    async def read() -> datetime:
        return clock.now()

    async def change() -> datetime:
        with clock.using(other):
            await asyncio.sleep(0)
            return clock.now()

    with clock.using(manual):
        assert await asyncio.create_task(read()) == START
        assert await asyncio.create_task(change()) == other.now()
        assert clock.now() == START
        assert await asyncio.to_thread(clock.now) == START


def test_a_plain_thread_reads_the_wall_clock() -> None:
    seen: list[datetime] = []
    with clock.using(clock.ManualClock(START)):
        thread = threading.Thread(target=lambda: seen.append(clock.now()))
        thread.start()
        thread.join()
    assert seen[0] > START + timedelta(days=300)


class Kennel(Aggregate):
    id_prefix = "kennel"

    @event("Opened")
    def __init__(self, name: str) -> None:
        self.name = name

    @event("Renamed")
    def rename(self, name: str) -> None:
        self.name = name


def test_events_and_envelopes_take_their_time_from_the_clock() -> None:
    manual = clock.ManualClock(START)
    context = CommandContext(actor=Actor.system("tests"))
    with clock.using(manual):
        kennel = Kennel("north")
        manual.advance(timedelta(hours=1))
        kennel.rename("south")
        envelope = context.metadata()
    assert kennel.created_on == START
    assert kennel.modified_on == START + timedelta(hours=1)
    assert envelope.occurred_at == START + timedelta(hours=1)
    created, renamed = kennel.collect_events()
    assert (created.timestamp, renamed.timestamp) == (START, START + timedelta(hours=1))
