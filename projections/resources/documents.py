"""Resource documents: each aggregate's public view, for reads, lists and filters.

Any aggregate with a ``view()`` method gets a row. The projection keeps the aggregate's
state beside its view, so each event is applied to the state it left, exactly as the
aggregate itself would apply it: one code path decides, one replays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import Mapper, StoredEvent
from eventsourcing.utils import resolve_topic

from domain.aggregate import Snapshot
from domain.ids import is_id, prefix_of
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import checked_schema
from gateways.eventstore.transcoder import MsgspecTranscoder
from projections.resources.queries import DOCUMENTS

_json = msgspec.json.Encoder()


class ResourceDocuments:
    name = DOCUMENTS

    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)
        self.table = f"{self.schema}.resource_documents"
        self._transcoder = MsgspecTranscoder()
        self._mapper: Mapper[str] = Mapper(transcoder=self._transcoder)
        self._load = (
            f"SELECT resource_id, topic, version, state FROM {self.table} "
            "WHERE resource_id = ANY($1::text[])"
        )
        self._upsert = f"""
            INSERT INTO {self.table} AS d (resource_id, kind, tenant_id, project_id, version,
                topic, state, view, created_at, updated_at, position)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                $6::text[], $7::bytea[], $8::jsonb[], $9::timestamptz[], $10::timestamptz[],
                $11::bigint[])
            ON CONFLICT (resource_id) DO UPDATE SET
                tenant_id = excluded.tenant_id, project_id = excluded.project_id,
                version = excluded.version, topic = excluded.topic, state = excluded.state,
                view = excluded.view, updated_at = excluded.updated_at,
                position = excluded.position
        """

    def ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.table} (
                resource_id text PRIMARY KEY,
                kind text NOT NULL,
                tenant_id text,
                project_id text,
                version bigint NOT NULL,
                topic text NOT NULL,
                state bytea NOT NULL,
                view jsonb NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL,
                position bigint NOT NULL
            );
            CREATE INDEX IF NOT EXISTS resource_documents_kind_tenant
                ON {self.table} (kind, tenant_id, resource_id);
            CREATE INDEX IF NOT EXISTS resource_documents_kind_created
                ON {self.table} (kind, created_at, resource_id);
        """

    def tables(self) -> Sequence[str]:
        return (self.table,)

    def accumulator(self) -> _DocumentFold:
        return _DocumentFold(self._mapper, self._transcoder, self._upsert)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        wanted = [e for e in events if _has_view(e.topic)]
        if not wanted:
            return
        fold = self.accumulator()
        ids = list(dict.fromkeys(e.originator_id for e in wanted))
        for row in await conn.fetch(self._load, ids):
            fold.current[row[0]] = self._thaw(row[0], row[1], row[2], row[3])
        fold.add(wanted)
        await fold.write(conn)

    def _thaw(self, resource_id: str, topic: str, version: int, state: bytes) -> BaseAggregate[str]:
        snapshot = Snapshot(
            originator_id=resource_id,
            originator_version=version,
            timestamp=Snapshot.create_timestamp(),
            topic=topic,
            state=self._transcoder.decode(state),
        )
        return snapshot.mutate(None)


class _DocumentFold:
    """Aggregates replayed in memory; each touched one is written once, with its view."""

    def __init__(self, mapper: Mapper[str], transcoder: MsgspecTranscoder, upsert: str) -> None:
        self._mapper = mapper
        self._transcoder = transcoder
        self._upsert = upsert
        self.current: dict[str, BaseAggregate[str]] = {}
        self._created: dict[str, Any] = {}
        self._touched: dict[str, RecordedEvent] = {}

    def add(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if not _has_view(event.topic):
                continue
            domain_event = self._mapper.to_domain_event(
                StoredEvent(event.originator_id, event.originator_version, event.topic, event.state)
            )
            previous = self.current.get(event.originator_id)
            aggregate = domain_event.mutate(previous)  # type: ignore[attr-defined]
            self.current[event.originator_id] = aggregate
            if previous is None:
                self._created[event.originator_id] = event.recorded_at
            self._touched[event.originator_id] = event

    async def write(self, conn: asyncpg.Connection) -> None:
        if not self._touched:
            return
        columns: list[list[Any]] = [[] for _ in range(11)]
        for resource_id, event in self._touched.items():
            aggregate = self.current[resource_id]
            view = aggregate.view()  # type: ignore[attr-defined]
            snapshot = Snapshot.take(aggregate)
            values = (
                resource_id,
                prefix_of(resource_id) if is_id(resource_id) else "unknown",
                view.get("tenant_id", event.tenant_id),
                view.get("project_id"),
                aggregate.version,
                snapshot.topic,
                self._transcoder.encode(snapshot.state),
                _json.encode(view).decode(),
                self._created.get(resource_id, event.recorded_at),
                event.recorded_at,
                event.position,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        await conn.execute(self._upsert, *columns)
        self._touched = {}


_VIEW_CACHE: dict[str, bool] = {}


def _has_view(topic: str) -> bool:
    """Whether the aggregate behind an event topic has a ``view()`` (cached per topic)."""
    known = _VIEW_CACHE.get(topic)
    if known is None:
        try:
            owner = resolve_topic(topic.rsplit(".", 1)[0])
            known = callable(getattr(owner, "view", None))
        except Exception:  # topics from other systems or removed classes: no document
            known = False
        _VIEW_CACHE[topic] = known
    return known
