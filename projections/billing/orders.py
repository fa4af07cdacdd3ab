"""Prepaid orders: each one placed (its money held), then paid (the hold spent) or voided.

A fold of the billing accounts' hold events; the tenant is the account's owner (its id
has the same body) and the hold's order record says what it is for and in what currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from domain.ids import derived_id
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import checked_schema

_HOLDS = tuple(
    f"domain.billing.account:BillingAccount.{name}"
    for name in ("HoldPlaced", "HoldPosted", "HoldVoided")
)
_state = msgspec.json.Decoder(dict[str, Any]).decode


def _moment(value: Any) -> datetime:
    return datetime.fromisoformat(value["_data_"] if isinstance(value, dict) else value)


class BillingOrders:
    name = "billing_orders"

    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)
        self.orders = f"{self.schema}.billing_orders"

    def ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.orders} (
                order_id text PRIMARY KEY,
                tenant_id text NOT NULL,
                kind text NOT NULL,
                subscription_id text,
                resource_id text,
                term text,
                amount_minor bigint NOT NULL,
                currency text NOT NULL,
                status text NOT NULL,
                placed_at timestamptz NOT NULL,
                settled_at timestamptz,
                reason text,
                position bigint NOT NULL
            );
            CREATE INDEX IF NOT EXISTS billing_orders_tenant
                ON {self.orders} (tenant_id, position);
        """

    def tables(self) -> Sequence[str]:
        return (self.orders,)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.topic in _HOLDS:
                await self._order(conn, event, event.topic.rsplit(".", 1)[1], _state(event.state))

    async def _order(
        self, conn: asyncpg.Connection, event: RecordedEvent, name: str, state: dict[str, Any]
    ) -> None:
        at = _moment(state["timestamp"])
        if name == "HoldPlaced":
            about = state.get("order") or {}
            await conn.execute(
                f"INSERT INTO {self.orders} (order_id, tenant_id, kind, subscription_id, "
                "resource_id, term, amount_minor, currency, status, placed_at, position) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'held', $9, $10)",
                state["order_id"],
                derived_id("tnt", event.originator_id),
                about.get("kind", "order"),
                about.get("subscription_id"),
                about.get("resource_id"),
                about.get("term"),
                int(state["amount_minor"]),
                about["currency"],
                at,
                event.position,
            )
            return
        await conn.execute(
            f"UPDATE {self.orders} SET status = $2, settled_at = $3, reason = $4 "
            "WHERE order_id = $1",
            state["order_id"],
            "paid" if name == "HoldPosted" else "voided",
            at,
            state.get("reason"),
        )
