"""Reading the delivery log: for the webhook API and for the operators' metrics."""

# Table names come from ``checked_schema``; every value travels as a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

import asyncpg

from gateways.eventstore.schema import EVENTS_TABLE
from gateways.webhooks.deliveries import DeliveryLog
from gateways.webhooks.records import DELIVERY_COLUMNS, Cursor


class DeliveryQueries:
    def __init__(self, log: DeliveryLog) -> None:
        self._log = log
        self.events = f"{log.schema}.{EVENTS_TABLE}"
        self.registry = log.registry.table
        self.cursors = log.cursors
        self.deliveries = log.deliveries
        self.attempts = log.attempts

    async def backlog(self, pool: asyncpg.Pool) -> dict[str, int]:
        """Per webhook not deleted: its tenant's events it has not yet passed (for /metrics)."""
        rows = await pool.fetch(
            f"SELECT c.webhook_id, (SELECT count(*) FROM {self.events} e "
            "WHERE e.tenant_id = r.tenant_id AND e.notification_id > c.position) "
            f"FROM {self.cursors} c JOIN {self.registry} r USING (webhook_id) "
            "WHERE r.status <> 'deleted'"
        )
        return {row[0]: int(row[1]) for row in rows}

    async def backlog_of(self, pool: asyncpg.Pool, tenant_id: str, cursor: Cursor) -> int:
        """One webhook's backlog, as ``backlog`` counts it: its tenant's events after it."""
        found = await pool.fetchval(
            f"SELECT count(*) FROM {self.events} WHERE tenant_id = $1 AND notification_id > $2",
            tenant_id,
            cursor.position,
        )
        return int(found)

    async def cursor(self, pool: asyncpg.Pool, webhook_id: str) -> Cursor | None:
        return await self._log.cursor(pool, webhook_id)

    async def page(
        self,
        pool: asyncpg.Pool,
        webhook_id: str,
        *,
        limit: int,
        before: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; ``before`` is the last delivery id of the previous page."""
        rows = await pool.fetch(
            f"SELECT {DELIVERY_COLUMNS} FROM {self.deliveries} WHERE webhook_id = $1 "
            "AND ($2::text IS NULL OR delivery_id < $2) AND ($3::text IS NULL OR status = $3) "
            "ORDER BY delivery_id DESC LIMIT $4",
            webhook_id,
            before,
            status,
            limit,
        )
        return [_view(row) for row in rows]

    async def one(
        self, pool: asyncpg.Pool, webhook_id: str, delivery_id: str
    ) -> dict[str, Any] | None:
        """A delivery with its attempts, oldest first."""
        row = await pool.fetchrow(
            f"SELECT {DELIVERY_COLUMNS} FROM {self.deliveries} "
            "WHERE webhook_id = $1 AND delivery_id = $2",
            webhook_id,
            delivery_id,
        )
        if row is None:
            return None
        attempts = await pool.fetch(
            f"SELECT attempt, attempted_at, status_code, latency_ms, error FROM {self.attempts} "
            "WHERE delivery_id = $1 ORDER BY attempt",
            delivery_id,
        )
        view = _view(row)
        view["attempt_log"] = [
            {
                "attempt": a[0],
                "attempted_at": a[1].isoformat(),
                "status_code": a[2],
                "latency_ms": a[3],
                "error": a[4],
            }
            for a in attempts
        ]
        return view


def _view(row: Any) -> dict[str, Any]:
    view = dict(row.items())
    view["id"] = view.pop("delivery_id")
    for key in ("created_at", "last_attempt_at"):
        view[key] = view[key].isoformat()
    return view
