"""The audit log: one row per command, with who, what, from where, and how it ended."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import checked_schema

_OPERATION = "domain.operations.operation:Operation."
_state = msgspec.json.Decoder(dict[str, Any]).decode


class AuditLog:
    name = "audit_log"

    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)
        self.table = f"{self.schema}.audit_events"
        self._insert = f"""
            INSERT INTO {self.table} (operation_id, occurred_at, tenant_id, actor_kind,
                actor_id, via_key, action, resource_id, request_id, source, outcome,
                error_code, error_detail, position)
            SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[],
                $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                $11::text[], $12::text[], $13::text[], $14::bigint[])
        """
        self._finish = f"""
            UPDATE {self.table} SET outcome = $2, error_code = $3, error_detail = $4
            WHERE operation_id = $1
        """

    def ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.table} (
                operation_id text PRIMARY KEY,
                occurred_at timestamptz NOT NULL,
                tenant_id text,
                actor_kind text NOT NULL,
                actor_id text NOT NULL,
                via_key text,
                action text NOT NULL,
                resource_id text,
                request_id text,
                source text,
                outcome text NOT NULL,
                error_code text,
                error_detail text,
                position bigint NOT NULL
            );
            CREATE INDEX IF NOT EXISTS audit_events_tenant
                ON {self.table} (tenant_id, occurred_at, operation_id);
            CREATE INDEX IF NOT EXISTS audit_events_time
                ON {self.table} (occurred_at, operation_id);
        """

    def tables(self) -> Sequence[str]:
        return (self.table,)

    def accumulator(self) -> _AuditFold:
        return _AuditFold(self._insert, self._finish)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        fold = self.accumulator()
        fold.add(events)
        await fold.write(conn)


class _AuditFold:
    """New rows and outcomes; an outcome of a row folded here just edits that row."""

    def __init__(self, insert: str, finish: str) -> None:
        self._insert = insert
        self._finish = finish
        self.rows: dict[str, list[Any]] = {}
        self.finished: dict[str, tuple[str, str | None, str | None]] = {}

    def add(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if not event.topic.startswith(_OPERATION):
                continue
            name = event.topic[len(_OPERATION) :]
            state = _state(event.state)
            if name == "Created":
                envelope = event.envelope()
                self.rows[event.originator_id] = [
                    event.originator_id,
                    envelope.occurred_at,
                    state.get("tenant_id"),
                    str(envelope.actor.kind),
                    envelope.actor.id,
                    envelope.actor.via,
                    state["action"],
                    state.get("resource_id"),
                    state.get("request_id"),
                    state.get("source"),
                    state["status"],
                    state.get("error_code"),
                    state.get("error_detail"),
                    event.position,
                ]
            elif name in ("Succeeded", "Failed"):
                outcome = (
                    ("succeeded", None, None)
                    if name == "Succeeded"
                    else ("failed", state["code"], state["detail"])
                )
                row = self.rows.get(event.originator_id)
                if row is None:
                    self.finished[event.originator_id] = outcome
                else:
                    row[10], row[11], row[12] = outcome

    async def write(self, conn: asyncpg.Connection) -> None:
        if self.rows:
            columns = zip(*self.rows.values(), strict=True)
            await conn.execute(self._insert, *[list(column) for column in columns])
        if self.finished:
            await conn.executemany(
                self._finish, [(op, *outcome) for op, outcome in self.finished.items()]
            )
        self.rows, self.finished = {}, {}
