"""Long streams load from their latest snapshot and come out the same as a full replay."""

from __future__ import annotations

import functools

from eventsourcing.persistence import StoredEvent

from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from domain.quota.ledger import QuotaLedger
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository


async def test_a_ledger_with_many_allocations_loads_from_its_snapshot(
    store: PostgresEventStore,
) -> None:
    repository = Repository(store, snapshot_every=10)
    context = CommandContext(actor=Actor.system("test"))
    tenant_id = new_id("tnt")
    ledger = QuotaLedger.open(tenant_id)
    await repository.save(context, ledger)
    for n in range(34):
        ledger = await repository.get(ledger.id, QuotaLedger)
        ledger.allocate(f"prj-{n:026d}", "*", {"projects": 1}, {"projects": 100})
        if n % 5 == 0:
            ledger.release(f"prj-{n:026d}")
        await repository.save(context, ledger)

    snapshot = await store.read_snapshot(ledger.id)
    assert snapshot is not None and snapshot[0] % 10 == 0 and snapshot[0] >= 30
    loaded = await repository.get(ledger.id, QuotaLedger)
    events = await store.read_stream(ledger.id)
    replayed = functools.reduce(
        lambda state, e: e.mutate(state),  # type: ignore[attr-defined]
        [
            repository.mapper.to_domain_event(
                StoredEvent(e.originator_id, e.originator_version, e.topic, e.state)
            )
            for e in events
        ],
        None,
    )
    assert loaded.version == replayed.version == len(events)
    assert loaded.allocations == replayed.allocations
    assert loaded.used("*")["projects"] == 34 - 7
