"""The webhook registry: each webhook's target, filters and state, and requested redeliveries.

A pure fold of ``Webhook`` events (it can be rebuilt from position 0). The dispatcher
reads it; its own progress lives in its delivery tables, which it compares with the
replay and resume counters kept here to notice what people asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec

from domain.subscriptions.webhook import ACTIVE, DEAD_LETTERED, DELETED, PAUSED
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import checked_schema

_WEBHOOK = "domain.subscriptions.webhook:Webhook."
_state = msgspec.json.Decoder(dict[str, Any]).decode
_STATUS_EVENTS = {"Paused": PAUSED, "DeadLettered": DEAD_LETTERED, "Deleted": DELETED}


class WebhookRegistry:
    name = "webhook_registry"

    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)
        self.table = f"{self.schema}.webhook_registry"
        self.requests = f"{self.schema}.webhook_redelivery_requests"
        t = self.table
        self._sql: dict[str, str] = {
            "Created": f"""INSERT INTO {t} (webhook_id, tenant_id, url, event_types, status,
                allow_private, secret_salt, key_id, created_position)
                VALUES ($1, $2, $3, $4, $5, false, $6, $7, $8) ON CONFLICT DO NOTHING""",
            "Updated": f"""UPDATE {t} SET url = coalesce($2, url),
                event_types = coalesce($3, event_types) WHERE webhook_id = $1""",
            "Status": f"UPDATE {t} SET status = $2 WHERE webhook_id = $1",
            "Resumed": f"""UPDATE {t} SET status = '{ACTIVE}', resume_seq = resume_seq + 1
                WHERE webhook_id = $1""",
            "Private": f"UPDATE {t} SET allow_private = $2 WHERE webhook_id = $1",
            "SecretRotated": f"UPDATE {t} SET secret_salt = $2, key_id = $3 WHERE webhook_id = $1",
            "ReplayRequested": f"""UPDATE {t} SET replay_seq = replay_seq + 1, replay_after = $2
                WHERE webhook_id = $1""",
            "RedeliveryRequested": f"""INSERT INTO {self.requests} (position, webhook_id,
                delivery_id, event_position) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        }

    def ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.table} (
                webhook_id text PRIMARY KEY,
                tenant_id text NOT NULL,
                url text NOT NULL,
                event_types text[] NOT NULL,
                status text NOT NULL,
                allow_private boolean NOT NULL,
                secret_salt text NOT NULL,
                key_id text NOT NULL,
                created_position bigint NOT NULL,
                replay_seq integer NOT NULL DEFAULT 0,
                replay_after bigint NOT NULL DEFAULT 0,
                resume_seq integer NOT NULL DEFAULT 0
            );
            CREATE INDEX IF NOT EXISTS webhook_registry_tenant ON {self.table} (tenant_id);
            CREATE TABLE IF NOT EXISTS {self.requests} (
                position bigint PRIMARY KEY,
                webhook_id text NOT NULL,
                delivery_id text NOT NULL,
                event_position bigint NOT NULL
            );
        """

    def tables(self) -> Sequence[str]:
        return (self.requests, self.table)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.topic.startswith(_WEBHOOK):
                await self._apply(conn, event.topic[len(_WEBHOOK) :], event)

    async def _apply(self, conn: asyncpg.Connection, name: str, event: RecordedEvent) -> None:
        state = _state(event.state)
        webhook_id, sql = event.originator_id, self._sql
        if name == "Created":
            status = PAUSED if state.get("paused") else ACTIVE
            await conn.execute(
                sql["Created"],
                webhook_id,
                state["tenant_id"],
                state["url"],
                state["event_types"],
                status,
                state["secret_salt"],
                state["key_id"],
                event.position,
            )
        elif name == "Updated":
            await conn.execute(sql["Updated"], webhook_id, state["url"], state["event_types"])
        elif name in _STATUS_EVENTS:
            await conn.execute(sql["Status"], webhook_id, _STATUS_EVENTS[name])
        elif name == "Resumed":
            await conn.execute(sql["Resumed"], webhook_id)
        elif name in ("PrivateTargetsAllowed", "PrivateTargetsRefused"):
            await conn.execute(sql["Private"], webhook_id, name == "PrivateTargetsAllowed")
        elif name == "SecretRotated":
            await conn.execute(sql[name], webhook_id, state["secret_salt"], state["key_id"])
        elif name == "ReplayRequested":
            await conn.execute(sql[name], webhook_id, state["after"])
        elif name == "RedeliveryRequested":
            await conn.execute(
                sql[name], event.position, webhook_id, state["delivery_id"], state["position"]
            )
