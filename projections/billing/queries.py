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


async def orders(
    pool: asyncpg.Pool,
    schema: str,
    *,
    tenant_id: str | None,
    limit: int,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Prepaid orders, newest first: held, then paid or voided."""
    table = f"{checked_schema(schema)}.billing_orders"
    args: list[Any] = []
    where = ["true"]
    if tenant_id is not None:
        args.append(tenant_id)
        where.append(f"tenant_id = ${len(args)}")
    if before is not None:
        args.append(before)
        where.append(f"position < ${len(args)}")
    args.append(limit)
    rows = await pool.fetch(
        "SELECT order_id, tenant_id, kind, subscription_id, resource_id, term, amount_minor, "
        f"currency, status, placed_at, settled_at, reason, position FROM {table} "
        f"WHERE {' AND '.join(where)} ORDER BY position DESC LIMIT ${len(args)}",
        *args,
    )
    return [dict(row) for row in rows]
