"""Reads of the billing read models: statements with their lines, a tenant's postings."""

from __future__ import annotations

from typing import Any

import asyncpg

from domain.billing.statement import Line, to_csv, to_json
from gateways.eventstore.schema import checked_schema
from projections.billing.ledger import LINE_COLUMNS, line_of


class BillingQueries:
    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)

    async def lines(self, pool: asyncpg.Pool, tenant_id: str, period: str) -> list[Line]:
        rows = await pool.fetch(
            f"SELECT {LINE_COLUMNS} FROM {self.schema}.billing_charges "
            "WHERE tenant_id = $1 AND period = $2",
            tenant_id,
            period,
        )
        return [line_of(row) for row in rows]

    async def statement(
        self, pool: asyncpg.Pool, tenant_id: str, period: str
    ) -> dict[str, Any] | None:
        row = await pool.fetchrow(
            f"SELECT tenant_id, period, currency, status, content_hash, billed_minor, lines "
            f"FROM {self.schema}.billing_statements WHERE tenant_id = $1 AND period = $2",
            tenant_id,
            period,
        )
        return dict(row) if row is not None else None

    async def export(
        self, pool: asyncpg.Pool, tenant_id: str, period: str, form: str
    ) -> bytes | None:
        """A statement as ``csv`` or ``json`` bytes; None when it has no statement."""
        found = await self.statement(pool, tenant_id, period)
        if found is None:
            return None
        lines = await self.lines(pool, tenant_id, period)
        if form == "csv":
            return to_csv(lines)
        return to_json(
            tenant_id, period, found["status"], found["currency"], lines, found["content_hash"]
        )
