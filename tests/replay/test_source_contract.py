"""One contract for every event source: the live PostgreSQL table and a SQLite export of it.

The same history is read through both; every property below must hold for each, and both
must hand back the same events byte for byte.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateways.eventstore.hashchain import GENESIS
from replay.aggregates import OPERATION_TOPIC
from replay.export import Selection, export
from replay.pgsource import PostgresSource
from replay.source import EventSource
from replay.sqlitesource import SqliteSource
from tests.replay.conftest import History

EVERYTHING = 10**6


@pytest.fixture(scope="module")
async def exported(history: History, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A full copy of the history as ``export --all-tenants --sealed`` writes it."""
    out = tmp_path_factory.mktemp("contract") / "all"
    source = await PostgresSource.open(history.database_url, history.schema)
    try:
        await export(source, Selection(tenant=None, sealed=True), out)
    finally:
        await source.close()
    return out / "events.sqlite"


@pytest.fixture(params=["postgresql", "sqlite"])
async def source(
    request: pytest.FixtureRequest, history: History, exported: Path
) -> AsyncIterator[EventSource]:
    opened: EventSource
    if request.param == "postgresql":
        opened = await PostgresSource.open(history.database_url, history.schema)
    else:
        opened = SqliteSource.open(exported)
    yield opened
    await opened.close()


async def test_a_full_copy_is_complete_and_ends_at_the_head(source: EventSource) -> None:
    everything = await source.read_all(limit=EVERYTHING)
    assert source.complete
    assert everything and await source.head() == everything[-1].position
    assert [e.position for e in everything] == sorted({e.position for e in everything})


async def test_pages_join_up_to_the_whole_and_respect_bounds(source: EventSource) -> None:
    everything = await source.read_all(limit=EVERYTHING)
    pages, after = [], 0
    while page := await source.read_all(after=after, limit=7):
        assert len(page) <= 7
        pages += page
        after = page[-1].position
    assert pages == everything
    middle = everything[len(everything) // 2].position
    bounded = await source.read_all(after=3, until=middle, limit=EVERYTHING)
    assert bounded == [e for e in everything if 3 < e.position <= middle]


async def test_filters_by_tenant_and_topic(source: EventSource, history: History) -> None:
    everything = await source.read_all(limit=EVERYTHING)
    tenant = await source.read_all(tenant_id=history.tenant_id, limit=EVERYTHING)
    assert tenant == [e for e in everything if e.tenant_id == history.tenant_id]
    operations = await source.read_all(topic_prefix=OPERATION_TOPIC, limit=EVERYTHING)
    assert operations == [e for e in everything if e.topic.startswith(OPERATION_TOPIC)]
    roles = await source.read_all(topic_contains=":Role.", limit=EVERYTHING)
    assert [e.originator_id for e in roles] == [history.role_id, history.role_id]
    assert await source.read_all(topic_contains="NoSuchThing", limit=EVERYTHING) == []


async def test_a_stream_comes_back_in_version_order(source: EventSource, history: History) -> None:
    stream = await source.read_stream(history.role_id)
    assert [e.originator_version for e in stream] == [1, 2]
    assert await source.read_stream("i-nothing") == []


async def test_linked_events_are_found_by_any_envelope_id(
    source: EventSource, history: History
) -> None:
    linked = await source.read_linked({"request_id": ["req-role-create"]})
    assert {e.originator_id for e in linked} == {history.role_id, history.role_created_op}
    (created, _) = await source.read_stream(history.role_id)
    envelope = created.envelope()
    by_event = await source.read_linked({"event_id": [envelope.event_id]})
    assert by_event == [created]
    either = await source.read_linked(
        {"event_id": [envelope.event_id], "command_id": [f"{history.owner_id}:replay-key-1"]}
    )
    assert created in either and len(either) > 1
    assert await source.read_linked({"request_id": []}) == []
    assert await source.read_linked({"causation_id": ["nothing-caused-this"]}) == []
    with pytest.raises(ValueError):
        await source.read_linked({"tenant_id": ["x"]})  # type: ignore[dict-item]


async def test_previous_hashes_are_the_links_of_the_chain(source: EventSource) -> None:
    everything = await source.read_all(limit=EVERYTHING)
    positions = [e.position for e in everything[:5]]
    previous = await source.previous_hashes(positions)
    assert previous[positions[0]] == GENESIS
    for before, event in itertools.pairwise(everything[:5]):
        assert previous[event.position] == before.chain_hash


async def test_both_sources_hold_the_same_bytes(history: History, exported: Path) -> None:
    live = await PostgresSource.open(history.database_url, history.schema)
    copy = SqliteSource.open(exported)
    try:
        assert await copy.read_all(limit=EVERYTHING) == await live.read_all(limit=EVERYTHING)
    finally:
        await live.close()
        await copy.close()


async def test_an_unsealed_copy_differs_only_where_it_says_it_redacted(
    history: History, tmp_path: Path
) -> None:
    live = await PostgresSource.open(history.database_url, history.schema)
    try:
        await export(live, Selection(tenant=None), tmp_path / "plain")
        copy = SqliteSource.open(tmp_path / "plain" / "events.sqlite")
        try:
            stored, written = (
                await live.read_all(limit=EVERYTHING),
                await copy.read_all(limit=EVERYTHING),
            )
            pairs = list(zip(stored, written, strict=True))
            differ = {a.position for a, b in pairs if a != b}
            assert differ and differ == copy.redacted
            assert all(a.state != b.state for a, b in pairs if a.position in differ)
            assert not live.redacted
        finally:
            await copy.close()
    finally:
        await live.close()
