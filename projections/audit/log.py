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

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        rows: list[tuple[Any, ...]] = []
        finished: list[tuple[str, str, str | None, str | None]] = []
        for event in events:
            if not event.topic.startswith(_OPERATION):
                continue
            name = event.topic[len(_OPERATION) :]
            state = _state(event.state)
            if name == "Created":
                envelope = event.envelope()
                rows.append(
                    (
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
                    )
                )
            elif name == "Succeeded":
                finished.append((event.originator_id, "succeeded", None, None))
            elif name == "Failed":
                finished.append((event.originator_id, "failed", state["code"], state["detail"]))
        if rows:
            await conn.execute(self._insert, *[list(column) for column in zip(*rows, strict=True)])
        if finished:
            await conn.executemany(self._finish, finished)
