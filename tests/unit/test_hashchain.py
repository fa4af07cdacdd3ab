"""The hash chain: one link per event, sensitive to every field, unambiguous at field borders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateways.eventstore import hashchain
from gateways.eventstore.hashchain import GENESIS, ChainBreak, ChainVerifier, link
from gateways.eventstore.records import RecordedEvent

FIELDS: dict[str, Any] = {
    "position": 7,
    "originator_id": "i-01jd3x0000000000000000000z",
    "originator_version": 3,
    "topic": "domain.compute.instance:Instance.Started",
    "state": b'{"host":"h-1"}',
    "metadata": b'{"event_id":"e1"}',
    "tenant_id": "tnt-01jd3x0000000000000000000z",
}
PREVIOUS = bytes(range(32))


def test_genesis_is_32_zero_bytes() -> None:
    assert bytes(32) == GENESIS


def test_a_link_is_a_sha256_digest_and_deterministic() -> None:
    first = link(PREVIOUS, **FIELDS)
    assert len(first) == 32
    assert link(PREVIOUS, **FIELDS) == first
    assert link(bytes(PREVIOUS), **dict(FIELDS)) == first


@pytest.mark.parametrize(
    ("field", "changed"),
    [
        ("position", 8),
        ("originator_id", "i-01jd3x0000000000000000001z"),
        ("originator_version", 4),
        ("topic", "domain.compute.instance:Instance.Stopped"),
        ("state", b'{"host":"h-2"}'),
        ("metadata", b'{"event_id":"e2"}'),
        ("state", b""),
        ("metadata", b""),
        ("tenant_id", "tnt-01jd3x0000000000000000001z"),
        ("tenant_id", None),
        ("tenant_id", ""),
    ],
)
def test_every_field_changes_the_link(field: str, changed: Any) -> None:
    assert link(PREVIOUS, **{**FIELDS, field: changed}) != link(PREVIOUS, **FIELDS)


def test_the_previous_hash_changes_the_link() -> None:
    other = bytes(31) + b"\x01"
    assert link(other, **FIELDS) != link(PREVIOUS, **FIELDS)
    assert link(GENESIS, **FIELDS) != link(PREVIOUS, **FIELDS)


def test_position_and_version_are_not_interchangeable() -> None:
    swapped = {**FIELDS, "position": 3, "originator_version": 7}
    assert link(PREVIOUS, **swapped) != link(PREVIOUS, **FIELDS)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ({"originator_id": "ab", "topic": "c"}, {"originator_id": "a", "topic": "bc"}),
        ({"topic": "ab", "state": b"c"}, {"topic": "a", "state": b"bc"}),
        ({"state": b"ab", "metadata": b"c"}, {"state": b"a", "metadata": b"bc"}),
        ({"state": b"", "metadata": b"abc"}, {"state": b"abc", "metadata": b""}),
    ],
    ids=["id|topic", "topic|state", "state|metadata", "empty|all"],
)
def test_framing_keeps_field_borders(left: dict[str, Any], right: dict[str, Any]) -> None:
    assert link(PREVIOUS, **{**FIELDS, **left}) != link(PREVIOUS, **{**FIELDS, **right})


def chain(count: int) -> list[RecordedEvent]:
    events = []
    previous = GENESIS
    for position in range(1, count + 1):
        fields: dict[str, Any] = {
            "position": position,
            "originator_id": f"s-{position % 3}",
            "originator_version": 1 + position // 3,
            "topic": "tests:Happened",
            "state": f'{{"n":{position}}}'.encode(),
            "metadata": f'{{"event_id":"{position}"}}'.encode(),
            "tenant_id": None if position % 2 else "tnt-01jd3x0000000000000000000z",
        }
        previous = link(previous, **fields)
        events.append(
            RecordedEvent(
                **fields,
                chain_hash=previous,
                recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
    return events


def altered(event: RecordedEvent, **changes: Any) -> RecordedEvent:
    fields = {name: getattr(event, name) for name in event.__struct_fields__}
    return RecordedEvent(**{**fields, **changes})


def test_expected_hash_is_the_link_of_a_recorded_event() -> None:
    first = chain(1)[0]
    assert hashchain.expected_hash(GENESIS, first) == first.chain_hash


def test_a_whole_chain_verifies_in_one_feed_or_many() -> None:
    events = chain(10)
    whole = ChainVerifier()
    whole.feed(events)
    assert whole.checked == 10
    assert whole.previous == events[-1].chain_hash

    paged = ChainVerifier()
    for start in range(0, 10, 3):
        paged.feed(events[start : start + 3])
    assert paged.checked == 10


def test_verification_can_resume_from_a_trusted_hash() -> None:
    events = chain(10)
    resumed = ChainVerifier(previous=events[5].chain_hash or b"")
    resumed.feed(events[6:])
    assert resumed.checked == 4
    with pytest.raises(ChainBreak):
        ChainVerifier().feed(events[6:])


@pytest.mark.parametrize(
    "changes",
    [
        {"state": b'{"n":0}'},
        {"metadata": b"{}"},
        {"topic": "tests:Other"},
        {"originator_id": "s-9"},
        {"originator_version": 99},
        {"position": 40},
        {"chain_hash": bytes(32)},
        {"chain_hash": None},
    ],
    ids=repr,
)
def test_an_altered_event_breaks_the_chain_where_it_is(changes: dict[str, Any]) -> None:
    events = chain(8)
    events[4] = altered(events[4], **changes)
    with pytest.raises(ChainBreak) as caught:
        ChainVerifier().feed(events)
    broken = caught.value
    assert broken.position == events[4].position
    assert (broken.originator_id, broken.originator_version) == (
        events[4].originator_id,
        events[4].originator_version,
    )
    assert str(events[4].position) in str(broken)


def test_a_removed_event_breaks_the_chain_at_the_next_one() -> None:
    events = chain(8)
    del events[4]
    with pytest.raises(ChainBreak) as caught:
        ChainVerifier().feed(events)
    assert caught.value.position == 6


def test_reordered_events_break_the_chain_at_the_first_moved() -> None:
    events = chain(8)
    events[2], events[5] = events[5], events[2]
    with pytest.raises(ChainBreak) as caught:
        ChainVerifier().feed(events)
    assert caught.value.position == 6  # the event now third in line
