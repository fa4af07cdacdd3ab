"""Reads of the ledger for the billing pages: transactions, charge lines, daily usage, periods.

Every page is keyset-paginated: each read takes the sort key of the last row the caller saw
and answers up to ``limit`` rows after it, so a page never shifts when new rows arrive.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from domain.billing.postings import tenant_account
from domain.billing.statement import Line
from gateways.eventstore.schema import checked_schema
from projections.billing.ledger import LINE_COLUMNS, line_of


class BillingReads:
    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)

    async def transactions(
        self,
        pool: asyncpg.Pool,
        *,
        tenant_id: str | None,
        limit: int,
        before: tuple[int, int] | None = None,
        entry: str | None = None,
    ) -> list[dict[str, Any]]:
        """Postings on tenants' own accounts, newest first, signed as the tenant sees them.

        ``entry`` keeps one kind of ledger event: ``Recharged`` lists the recharges.

        The tenant's account is credit-normal (a recharge credits it), so the tenant's
        view of a posting is its negation: a recharge is +, a charge is -.
        """
        args: list[Any] = []
        where = ["ledger_account LIKE 'tenant:%'"]
        if tenant_id is not None:
            args += [tenant_id, tenant_account(tenant_id)]
            where += ["tenant_id = $1", "ledger_account = $2"]
        if entry is not None:
            args.append(entry)
            where.append(f"entry = ${len(args)}")
        if before is not None:
            args += list(before)
            where.append(f"(position, seq) < (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        rows = await pool.fetch(
            "SELECT position, seq, tenant_id, ledger_account, entry, -amount_minor AS amount_minor,"
            f" currency, charge_id, occurred_at FROM {self.schema}.billing_postings "
            f"WHERE {' AND '.join(where)} ORDER BY position DESC, seq DESC LIMIT ${len(args)}",
            *args,
        )
        return [dict(row) for row in rows]

    async def charges(
        self,
        pool: asyncpg.Pool,
        *,
        tenant_id: str,
        limit: int,
        resource_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: tuple[datetime, str] | None = None,
    ) -> list[Line]:
        """Charge lines overlapping [since, until), newest first."""
        args: list[Any] = [tenant_id]
        where = ["tenant_id = $1"]
        if resource_id is not None:
            args.append(resource_id)
            where.append(f"resource_id = ${len(args)}")
        if since is not None:
            args.append(since)
            where.append(f"ended_at > ${len(args)}")
        if until is not None:
            args.append(until)
            where.append(f"started_at < ${len(args)}")
        if before is not None:
            args += list(before)
            where.append(f"(started_at, charge_id) < (${len(args) - 1}, ${len(args)})")
        args.append(limit)
        rows = await pool.fetch(
            f"SELECT {LINE_COLUMNS} FROM {self.schema}.billing_charges "
            f"WHERE {' AND '.join(where)} ORDER BY started_at DESC, charge_id DESC "
            f"LIMIT ${len(args)}",
            *args,
        )
        return [line_of(row) for row in rows]

    async def daily(
        self,
        pool: asyncpg.Pool,
        *,
        tenant_id: str,
        limit: int,
        since: date | None = None,
        until: date | None = None,
        after: tuple[date, str] | None = None,
    ) -> list[dict[str, Any]]:
        """What each resource cost on each UTC day in [since, until), newest day first.

        A charge line never spans two days (rating cuts at every hour), so the day of its
        start is its day.
        """
        args: list[Any] = [tenant_id]
        where = ["tenant_id = $1"]
        day = "(started_at AT TIME ZONE 'UTC')::date"
        if since is not None:
            args.append(since)
            where.append(f"{day} >= ${len(args)}")
        if until is not None:
            args.append(until)
            where.append(f"{day} < ${len(args)}")
        having = ""
        if after is not None:
            args += list(after)
            d, r = f"${len(args) - 1}", f"${len(args)}"
            having = f"HAVING {day} < {d} OR ({day} = {d} AND resource_id > {r})"
        args.append(limit)
        rows = await pool.fetch(
            f"SELECT {day} AS day, resource_id, currency, "
            "sum(amount_minor)::bigint AS amount_minor, count(*)::integer AS lines FROM"
            f" {self.schema}.billing_charges "
            f"WHERE {' AND '.join(where)} GROUP BY {day}, resource_id, currency {having} "
            f"ORDER BY day DESC, resource_id, currency LIMIT ${len(args)}",
            *args,
        )
        return [dict(row) for row in rows]

    async def statements(
        self, pool: asyncpg.Pool, *, tenant_id: str, limit: int, before: str | None = None
    ) -> list[dict[str, Any]]:
        """A tenant's statement periods, newest first."""
        args: list[Any] = [tenant_id]
        where = "tenant_id = $1"
        if before is not None:
            args.append(before)
            where += " AND period < $2"
        args.append(limit)
        rows = await pool.fetch(
            "SELECT tenant_id, period, currency, status, billed_minor, lines, content_hash "
            f"FROM {self.schema}.billing_statements WHERE {where} "
            f"ORDER BY period DESC LIMIT ${len(args)}",
            *args,
        )
        return [dict(row) for row in rows]

    async def period_statements(self, pool: asyncpg.Pool, period: str) -> list[dict[str, Any]]:
        """Every tenant's statement of one period, by tenant."""
        rows = await pool.fetch(
            "SELECT tenant_id, period, currency, status, billed_minor, lines, content_hash "
            f"FROM {self.schema}.billing_statements WHERE period = $1 ORDER BY tenant_id",
            period,
        )
        return [dict(row) for row in rows]

    async def period_lines(self, pool: asyncpg.Pool, period: str) -> list[Line]:
        """Every tenant's charge lines of one statement period (in no particular order)."""
        rows = await pool.fetch(
            f"SELECT {LINE_COLUMNS} FROM {self.schema}.billing_charges WHERE period = $1", period
        )
        return [line_of(row) for row in rows]
