"""The resource index: one row per aggregate, for listing a tenant's resources by kind."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from domain.ids import is_id, prefix_of
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import checked_schema


class ResourceIndex:
    """Kind, owner tenant, version and last event of every aggregate in the store."""

    name = "resource_index"
    headers_only = True
    """Kind, tenant, version and event names: no need for the events' state."""

    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)
        self.table = f"{self.schema}.resource_index"
        self._upsert = f"""
            INSERT INTO {self.table} AS r (resource_id, kind, tenant_id, version,
                last_event, first_position, last_position, created_at, updated_at)
            SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[],
                $5::text[], $6::bigint[], $7::bigint[], $8::timestamptz[],
                $9::timestamptz[])
            ON CONFLICT (resource_id) DO UPDATE SET
                tenant_id = coalesce(r.tenant_id, excluded.tenant_id),
                version = excluded.version,
                last_event = excluded.last_event,
                last_position = excluded.last_position,
                updated_at = excluded.updated_at
        """

    def ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.table} (
                resource_id text PRIMARY KEY,
                kind text NOT NULL,
                tenant_id text,
                version bigint NOT NULL,
                last_event text NOT NULL,
                first_position bigint NOT NULL,
                last_position bigint NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL
            );
            CREATE INDEX IF NOT EXISTS resource_index_tenant_kind
                ON {self.table} (tenant_id, kind, resource_id);
        """

    def tables(self) -> Sequence[str]:
        return (self.table,)

    def accumulator(self) -> _IndexFold:
        """For rebuilds, which start from an emptied table: rows are copied in, not upserted."""
        return _IndexFold(self._upsert, copy_into=(self.schema, "resource_index"))

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        fold = _IndexFold(self._upsert)
        fold.add(events)
        await fold.write(conn)


class _IndexFold:
    """Rows folded in memory: a resource touched many times costs one row write."""

    def __init__(self, upsert: str, copy_into: tuple[str, str] | None = None) -> None:
        self._upsert = upsert
        self._copy_into = copy_into
        self.rows: dict[str, list[object]] = {}

    def add(self, events: Sequence[RecordedEvent]) -> None:
        rows = self.rows
        for event in events:
            row = rows.get(event.originator_id)
            event_name = event.topic.rpartition(".")[2].rpartition(":")[2]
            if row is None:
                rows[event.originator_id] = [
                    event.originator_id,
                    _kind(event.originator_id),
                    event.tenant_id,
                    event.originator_version,
                    event_name,
                    event.position,
                    event.position,
                    event.recorded_at,
                    event.recorded_at,
                ]
            else:
                row[2] = row[2] or event.tenant_id
                row[3] = event.originator_version
                row[4] = event_name
                row[6] = event.position
                row[8] = event.recorded_at

    async def write(self, conn: asyncpg.Connection) -> None:
        if self.rows and self._copy_into is not None:
            schema, table = self._copy_into
            await conn.copy_records_to_table(
                table, schema_name=schema, records=[tuple(row) for row in self.rows.values()]
            )
            self._copy_into = None  # the table is no longer empty
        elif self.rows:
            columns = zip(*self.rows.values(), strict=True)
            await conn.execute(self._upsert, *[list(c) for c in columns])
        self.rows = {}


def _kind(resource_id: str) -> str:
    return prefix_of(resource_id) if is_id(resource_id) else "unknown"
