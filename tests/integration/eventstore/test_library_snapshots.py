"""A stock eventsourcing ``Application`` with snapshotting on reads the store we write.

Our snapshots are the library's own form (its mapper, our ``Snapshot`` event class, the
aggregate's topic and state inside it), so the library loads an aggregate from the latest
snapshot plus the events after it, exactly as it loads what it wrote itself. The settings
are the ones the README gives a third-party reader.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import asyncpg
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic

from domain.aggregate import Snapshot
from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from domain.quota.ledger import QuotaLedger
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository
from gateways.eventstore.schema import SNAPSHOTS_TABLE, ensure_schema
from tests.integration.eventstore.test_library_compat import SCloud, library_env

EVERY = 10
ALLOCATIONS = 34


async def busy_ledger(repository: Repository) -> QuotaLedger:
    """A ledger whose stream (42 events) is long enough for snapshots at 10, 20, 30, 40."""
    context = CommandContext(actor=Actor.system("test"))
    ledger = QuotaLedger.open(new_id("tnt"))
    await repository.save(context, ledger)
    for n in range(ALLOCATIONS):
        ledger = await repository.get(ledger.id, QuotaLedger)
        ledger.allocate(f"prj-{n:026d}", "*", {"projects": 1}, {"projects": 100})
        if n % 5 == 0:
            ledger.release(f"prj-{n:026d}")
        await repository.save(context, ledger)
    return ledger


def replayed(repository: Repository, events: list[Any]) -> Any:
    return functools.reduce(
        lambda state, e: e.mutate(state),
        [
            repository.mapper.to_domain_event(
                StoredEvent(e.originator_id, e.originator_version, e.topic, e.state)
            )
            for e in events
        ],
        None,
    )


async def test_a_stock_application_with_snapshotting_rebuilds_our_aggregates(
    store: PostgresEventStore, database_url: str, schema: str
) -> None:
    repository = Repository(store, snapshot_every=EVERY)
    ledger = await busy_ledger(repository)
    expected = replayed(repository, await store.read_stream(ledger.id))
    assert expected.version == 42
    snapshot = await store.read_snapshot(ledger.id)
    assert snapshot is not None and snapshot[0] == 40
    assert snapshot[1] == get_topic(Snapshot), "not the library's snapshot form"
    ours = await repository.get(ledger.id, QuotaLedger)
    assert (ours.version, ours.allocations) == (expected.version, expected.allocations)

    def read_with_library() -> None:
        app = SCloud(env={**library_env(database_url, schema), "IS_SNAPSHOTTING_ENABLED": "y"})
        try:
            assert app.snapshots is not None
            latest = list(app.snapshots.get(ledger.id, desc=True, limit=1))
            assert [s.originator_version for s in latest] == [40]
            assert isinstance(latest[0], Snapshot)
            copy = app.repository.get(ledger.id)
            assert isinstance(copy, QuotaLedger)
            assert copy.version == expected.version
            assert copy.allocations == expected.allocations
            assert copy.used("*")["projects"] == ALLOCATIONS - 7
            # An older version loads from the snapshot at or below it.
            middle = app.repository.get(ledger.id, version=25)
            assert middle.version == 25
        finally:
            app.close()

    await asyncio.to_thread(read_with_library)


async def test_snapshots_in_the_old_form_are_read_then_dropped(
    store: PostgresEventStore, database_url: str, schema: str
) -> None:
    """Before, a snapshot row held the aggregate's own topic and state: a stock reader fails
    on it (TypeError). Ours still loads it; the next ensure_schema drops it."""
    repository = Repository(store, snapshot_every=1000)
    ledger = await busy_ledger(repository)
    taken = Snapshot.take(ledger)
    await store.write_snapshot(
        ledger.id, ledger.version, taken.topic, repository.transcoder.encode(taken.state)
    )
    loaded = await repository.get(ledger.id, QuotaLedger)
    assert (loaded.version, loaded.allocations) == (ledger.version, ledger.allocations)

    conn = await asyncpg.connect(database_url)
    try:
        await ensure_schema(conn, schema)
        left = await conn.fetchval(f"SELECT count(*) FROM {schema}.{SNAPSHOTS_TABLE}")
    finally:
        await conn.close()
    assert left == 0
    again = await repository.get(ledger.id, QuotaLedger)
    assert (again.version, again.allocations) == (ledger.version, ledger.allocations)
