"""Snapshots: written beside the events, read back as the latest at or below a version."""

from __future__ import annotations

from decimal import Decimal

from eventsourcing.persistence import Mapper, StoredEvent

from domain.aggregate import Aggregate
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.transcoder import MsgspecTranscoder
from tests.integration.eventstore.builders import Account, event, request, stream


async def test_round_trip_and_at_most(store: PostgresEventStore) -> None:
    originator_id = stream()
    for version in (3, 7, 10):
        await store.write_snapshot(originator_id, version, "topic:Snap", f"v{version}".encode())

    assert await store.read_snapshot(originator_id) == (10, "topic:Snap", b"v10")
    assert await store.read_snapshot(originator_id, at_most=10) == (10, "topic:Snap", b"v10")
    assert await store.read_snapshot(originator_id, at_most=9) == (7, "topic:Snap", b"v7")
    assert await store.read_snapshot(originator_id, at_most=7) == (7, "topic:Snap", b"v7")
    assert await store.read_snapshot(originator_id, at_most=6) == (3, "topic:Snap", b"v3")
    assert await store.read_snapshot(originator_id, at_most=2) is None
    assert await store.read_snapshot(stream()) is None


async def test_the_first_snapshot_of_a_version_stays(store: PostgresEventStore) -> None:
    originator_id = stream()
    await store.write_snapshot(originator_id, 4, "topic:Snap", b"first")
    await store.write_snapshot(originator_id, 4, "topic:Snap", b"second")
    assert await store.read_snapshot(originator_id) == (4, "topic:Snap", b"first")


async def test_an_aggregate_snapshot_restores_its_state(store: PostgresEventStore) -> None:
    account = Account("ada")
    account.credit(Decimal("9.99"), at=account.created_on)
    account.collect_events()
    mapper: Mapper[str] = Mapper(transcoder=MsgspecTranscoder())
    snapshot = mapper.to_stored_event(Aggregate.Snapshot.take(account))
    await store.write_snapshot(
        account.id, snapshot.originator_version, snapshot.topic, snapshot.state
    )

    found = await store.read_snapshot(account.id)
    assert found is not None
    version, topic, state = found
    taken = mapper.to_domain_event(StoredEvent(account.id, version, topic, state))
    assert isinstance(taken, Aggregate.Snapshot)
    restored = taken.mutate(None)
    assert isinstance(restored, Account)
    assert (restored.id, restored.version, restored.owner) == (account.id, 2, "ada")
    assert restored.balance == Decimal("9.99")
    assert restored.created_on == account.created_on


async def test_the_latest_snapshot_and_the_events_after_it_in_one_read(
    store: PostgresEventStore,
) -> None:
    originator_id = stream()
    await store.append(request(*(event(originator_id, v) for v in range(1, 8))))
    assert await store.read_latest(stream()) == (None, [])

    snapshot, events = await store.read_latest(originator_id)
    assert snapshot is None and [e.originator_version for e in events] == list(range(1, 8))

    await store.write_snapshot(originator_id, 3, "topic:Snap", b"v3")
    await store.write_snapshot(originator_id, 5, "topic:Snap", b"v5")
    snapshot, events = await store.read_latest(originator_id)
    assert snapshot == (5, "topic:Snap", b"v5")
    assert [e.originator_version for e in events] == [6, 7]
    assert events[0].state == b'{"v":6}' and events[0].originator_id == originator_id

    await store.write_snapshot(originator_id, 7, "topic:Snap", b"v7")
    assert await store.read_latest(originator_id) == ((7, "topic:Snap", b"v7"), [])
