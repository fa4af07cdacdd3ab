"""The stock eventsourcing ``Application`` reads what our store writes (the replay CLI's path)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlsplit

from eventsourcing.application import Application
from eventsourcing.persistence import Mapper, StoredEvent

from domain import clock
from domain.aggregate import Aggregate
from domain.metadata import Actor, CommandContext
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, NewEvent
from gateways.eventstore.transcoder import MsgspecTranscoder
from tests.integration.eventstore.builders import Account


class SCloud(Application[str]):
    """Named so the library's table is ``scloud_events``, the table our store writes."""


def library_env(database_url: str, schema: str) -> dict[str, str]:
    url = urlsplit(database_url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
        "POSTGRES_SCHEMA": schema,
        "ORIGINATOR_ID_TYPE": "text",
        "CREATE_TABLE": "n",
    }


async def save(store: PostgresEventStore, aggregate: Aggregate) -> tuple[int, ...]:
    mapper: Mapper[str] = Mapper(transcoder=MsgspecTranscoder())
    context = CommandContext(actor=Actor.system("tests"), tenant_id="t-compat")
    events = []
    for domain_event in aggregate.collect_events():
        stored = mapper.to_stored_event(domain_event)
        events.append(
            NewEvent(
                str(stored.originator_id),
                stored.originator_version,
                stored.topic,
                stored.state,
                context.metadata(),
            )
        )
    result = await store.append(AppendRequest(events=tuple(events)))
    return result.positions


async def test_stock_application_reads_our_events(
    store: PostgresEventStore, database_url: str, schema: str
) -> None:
    start = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    manual = clock.ManualClock(start)
    with clock.using(manual):
        account = Account("ada")
        manual.advance(timedelta(minutes=5))
        account.credit(Decimal("12.50"), at=manual.now())
        account.credit(Decimal("0.05"), at=manual.now())
    other = Account("grace")
    other.credit(Decimal("1"), at=start)

    assert await save(store, account) == (1, 2, 3)
    assert await save(store, other) == (4, 5)
    ours = await store.read_all()

    def read_with_library() -> None:
        app = SCloud(env=library_env(database_url, schema))
        try:
            copy: Account = app.repository.get(account.id)
            assert isinstance(copy, Account)
            assert copy.version == 3
            assert copy.owner == "ada"
            assert copy.balance == Decimal("12.55")
            assert copy.last_credited == start + timedelta(minutes=5)
            assert copy.created_on == start
            assert app.repository.get(other.id).version == 2
            assert app.repository.get(account.id, version=1).balance == Decimal("0.00")

            notifications = app.notification_log.select(start=1, limit=10)
            assert [n.id for n in notifications] == [1, 2, 3, 4, 5]
            assert [(n.originator_id, n.originator_version) for n in notifications] == [
                (e.originator_id, e.originator_version) for e in ours
            ]
            assert [n.state for n in notifications] == [e.state for e in ours]
            assert [n.topic for n in notifications] == [e.topic for e in ours]
            assert app.recorder.max_notification_id() == 5
            later = app.recorder.select_notifications(start=3, limit=10, inclusive_of_start=False)
            assert [n.id for n in later] == [4, 5]
        finally:
            app.close()

    await asyncio.to_thread(read_with_library)


async def test_our_mapper_rebuilds_what_we_wrote(store: PostgresEventStore) -> None:
    account = Account("ada")
    account.credit(Decimal("3.10"), at=datetime(2025, 1, 2, tzinfo=UTC))
    await save(store, account)

    mapper: Mapper[str] = Mapper(transcoder=MsgspecTranscoder())
    copy: Aggregate | None = None
    for recorded in await store.read_stream(account.id):
        stored = StoredEvent(
            recorded.originator_id, recorded.originator_version, recorded.topic, recorded.state
        )
        domain_event = mapper.to_domain_event(stored)
        assert isinstance(domain_event, Aggregate.Event)
        copy = domain_event.mutate(copy)
    assert isinstance(copy, Account)
    assert (copy.id, copy.version, copy.balance) == (account.id, 2, Decimal("3.10"))
    assert copy.last_credited == datetime(2025, 1, 2, tzinfo=UTC)
