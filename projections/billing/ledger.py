"""The ledger: every money movement as balanced postings, every charge as a statement line.

Folded from ``BillingAccount`` events in position order, so a rebuild from position 0
writes the same rows. A charge for a period that was already closed when it was posted
lands in the next open period as a correction: a closed statement is never rewritten.
Closing a period freezes its lines under a content hash.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec

from domain.billing.account import next_period, period_of
from domain.billing.money import minor_units
from domain.billing.postings import postings
from domain.billing.statement import CORRECTION, PURCHASE, USAGE, Line, content_hash
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import checked_schema

_ACCOUNT = "domain.billing.account:BillingAccount."
_state = msgspec.json.Decoder(dict[str, Any]).decode
LINE_COLUMNS = (
    "charge_id, tenant_id, period, charge_class, resource_id, region_id, project_id, "
    "dimension, quantity, started_at, ended_at, unit_price, discount_percent, price_version, "
    "amount_minor, list_minor, currency, category"
)


def line_of(row: Any) -> Line:
    return Line(
        charge_id=row["charge_id"],
        tenant_id=row["tenant_id"],
        period=row["period"],
        charge_class=row["charge_class"],
        resource_id=row["resource_id"],
        region_id=row["region_id"],
        project_id=row["project_id"],
        dimension=row["dimension"],
        quantity=row["quantity"],
        start=row["started_at"].isoformat(),
        end=row["ended_at"].isoformat(),
        unit_price=row["unit_price"],
        discount_percent=row["discount_percent"],
        price_version=row["price_version"],
        amount_minor=row["amount_minor"],
        list_minor=row["list_minor"],
        currency=row["currency"],
        category=row["category"],
    )


class BillingLedger:
    name = "billing_ledger"

    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)
        self.postings = f"{self.schema}.billing_postings"
        self.charges = f"{self.schema}.billing_charges"
        self.statements = f"{self.schema}.billing_statements"
        self.accounts = f"{self.schema}.billing_accounts"

    def ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.accounts} (
                account_id text PRIMARY KEY,
                tenant_id text NOT NULL,
                currency text NOT NULL
            );
            CREATE TABLE IF NOT EXISTS {self.postings} (
                position bigint NOT NULL,
                seq integer NOT NULL,
                tenant_id text NOT NULL,
                ledger_account text NOT NULL,
                amount_minor bigint NOT NULL,
                currency text NOT NULL,
                charge_id text,
                entry text NOT NULL,
                occurred_at timestamptz NOT NULL,
                PRIMARY KEY (position, seq)
            );
            CREATE INDEX IF NOT EXISTS billing_postings_tenant
                ON {self.postings} (tenant_id, position);
            CREATE TABLE IF NOT EXISTS {self.charges} (
                charge_id text PRIMARY KEY,
                tenant_id text NOT NULL,
                period text NOT NULL,
                charge_class text NOT NULL,
                resource_id text NOT NULL,
                region_id text NOT NULL,
                project_id text,
                dimension text NOT NULL,
                quantity text NOT NULL,
                started_at timestamptz NOT NULL,
                ended_at timestamptz NOT NULL,
                unit_price text NOT NULL,
                discount_percent text NOT NULL,
                price_version text NOT NULL,
                amount_minor bigint NOT NULL,
                list_minor bigint NOT NULL,
                currency text NOT NULL,
                category text NOT NULL,
                position bigint NOT NULL
            );
            CREATE INDEX IF NOT EXISTS billing_charges_statement
                ON {self.charges} (tenant_id, period, started_at);
            CREATE INDEX IF NOT EXISTS billing_charges_resource
                ON {self.charges} (resource_id, started_at);
            CREATE TABLE IF NOT EXISTS {self.statements} (
                tenant_id text NOT NULL,
                period text NOT NULL,
                currency text NOT NULL,
                status text NOT NULL,
                content_hash text,
                billed_minor bigint NOT NULL,
                lines integer NOT NULL,
                closed_position bigint,
                PRIMARY KEY (tenant_id, period)
            );
        """

    def tables(self) -> Sequence[str]:
        return (self.statements, self.charges, self.postings, self.accounts)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if not event.topic.startswith(_ACCOUNT):
                continue
            name = event.topic[len(_ACCOUNT) :]
            state = _state(event.state)
            if name == "Created":
                await conn.execute(
                    f"INSERT INTO {self.accounts} (account_id, tenant_id, currency) "
                    "VALUES ($1, $2, $3)",
                    event.originator_id,
                    state["tenant_id"],
                    state["currency"],
                )
                continue
            tenant_id, currency = await self._owner(conn, event.originator_id)
            await self._post(conn, event, name, tenant_id, currency, state)
            if name == "ChargesPosted":
                await self._lines(conn, event, tenant_id, state["charges"])
            elif name == "HoldPosted":
                await self._lines(conn, event, tenant_id, [state["line"]], PURCHASE)
            elif name == "PeriodClosed":
                await self._close(conn, event, tenant_id, currency, state["period"])

    async def _post(
        self,
        conn: asyncpg.Connection,
        event: RecordedEvent,
        name: str,
        tenant_id: str,
        currency: str,
        state: dict[str, Any],
    ) -> None:
        lines = postings(name, tenant_id, state)
        if not lines:
            return
        occurred = _moment(state["timestamp"])
        await conn.executemany(
            f"INSERT INTO {self.postings} (position, seq, tenant_id, ledger_account, "
            "amount_minor, currency, charge_id, entry, occurred_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            [
                (
                    event.position,
                    seq,
                    tenant_id,
                    p.ledger_account,
                    p.amount_minor,
                    currency,
                    p.charge_id,
                    name,
                    occurred,
                )
                for seq, p in enumerate(lines)
            ],
        )

    async def _owner(self, conn: asyncpg.Connection, account_id: str) -> tuple[str, str]:
        row = await conn.fetchrow(
            f"SELECT tenant_id, currency FROM {self.accounts} WHERE account_id = $1", account_id
        )
        return (row[0], row[1])

    async def _last_closed(self, conn: asyncpg.Connection, tenant_id: str) -> str | None:
        value: str | None = await conn.fetchval(
            f"SELECT max(period) FROM {self.statements} WHERE tenant_id = $1 AND status = 'closed'",
            tenant_id,
        )
        return value

    async def _lines(
        self,
        conn: asyncpg.Connection,
        event: RecordedEvent,
        tenant_id: str,
        charges: list[dict[str, Any]],
        category: str = USAGE,
    ) -> None:
        closed = await self._last_closed(conn, tenant_id)
        rows = []
        for charge in charges:
            start = datetime.fromisoformat(charge["start"])
            end = datetime.fromisoformat(charge["end"])
            period, kind = period_of(start), ""
            if closed is not None and period <= closed:
                period, kind = next_period(closed), CORRECTION
            seconds = Decimal((end - start).total_seconds())
            # A purchase carries its list price; one posted before it did was at list.
            listed = (
                int(charge.get("list_minor", charge["amount_minor"]))
                if category == PURCHASE
                else minor_units(
                    Decimal(charge["quantity"]) * seconds / 3600 * Decimal(charge["unit_price"])
                )
            )
            rows.append(
                (
                    charge["charge_id"],
                    tenant_id,
                    period,
                    kind,
                    charge["resource_id"],
                    charge["region_id"],
                    charge["project_id"],
                    charge["dimension"],
                    charge["quantity"],
                    start,
                    end,
                    charge["unit_price"],
                    charge["discount_percent"],
                    charge["price_version"],
                    int(charge["amount_minor"]),
                    listed,
                    charge["currency"],
                    category,
                    event.position,
                )
            )
        await conn.executemany(
            f"INSERT INTO {self.charges} ({LINE_COLUMNS}, position) VALUES ($1, $2, $3, $4, $5, "
            "$6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
            rows,
        )
        for (period, currency), total, count in _totals(rows):
            await conn.execute(
                f"INSERT INTO {self.statements} (tenant_id, period, currency, status, "
                "billed_minor, lines) VALUES ($1, $2, $3, 'open', $4, $5) "
                "ON CONFLICT (tenant_id, period) DO UPDATE SET "
                "billed_minor = billing_statements.billed_minor + excluded.billed_minor, "
                "lines = billing_statements.lines + excluded.lines",
                tenant_id,
                period,
                currency,
                total,
                count,
            )

    async def _close(
        self,
        conn: asyncpg.Connection,
        event: RecordedEvent,
        tenant_id: str,
        currency: str,
        period: str,
    ) -> None:
        rows = await conn.fetch(
            f"SELECT {LINE_COLUMNS} FROM {self.charges} WHERE tenant_id = $1 AND period = $2",
            tenant_id,
            period,
        )
        lines = [line_of(row) for row in rows]
        await conn.execute(
            f"INSERT INTO {self.statements} (tenant_id, period, currency, status, content_hash, "
            "billed_minor, lines, closed_position) VALUES ($1, $2, $3, 'closed', $4, $5, $6, $7) "
            "ON CONFLICT (tenant_id, period) DO UPDATE SET status = 'closed', "
            "content_hash = excluded.content_hash, closed_position = excluded.closed_position",
            tenant_id,
            period,
            currency,
            content_hash(lines),
            sum(line.amount_minor for line in lines),
            len(lines),
            event.position,
        )


def _moment(value: Any) -> datetime:
    """A timestamp in the library's tagged form (``{"_type_": "datetime_iso", ...}``)."""
    return datetime.fromisoformat(value["_data_"] if isinstance(value, dict) else value)


def _totals(rows: list[tuple[Any, ...]]) -> list[tuple[tuple[str, str], int, int]]:
    sums: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        entry = sums.setdefault((row[2], row[16]), [0, 0])
        entry[0] += row[14]
        entry[1] += 1
    return [(key, total, count) for key, (total, count) in sorted(sums.items())]
