"""Billing: the rating rate, and the time to export a statement of 100,000 lines.

Rating: usage intervals as hourly settlement hands them to ``domain.billing.rating.rate``
(mostly whole hours, some cut short by lifecycle events, a few catching up over several
hours; anywhere in a month, four dimensions, two regions: one with its own book and a
price change mid-month, one falling back to the platform book; tenants with and without
their own prices), the best of three passes. Baselines from the same run: the store's raw
read rate of events by position, and a plain loop over the same intervals. Goal: at least
50,000 intervals/s.

Export: 100,000 lines of one tenant's month rendered by ``domain.billing.statement`` from
``Line`` objects, and through ``BillingQueries.export`` from a billing_charges table filled
by COPY in a scratch schema (dropped afterwards). Goal: under 5 s each.

Run: ``python -m tests.bench.billing [--scale 1.0]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from domain.billing.price_book import PLATFORM_BOOK_ID, book_id
from domain.billing.rating import Usage, rate
from domain.billing.statement import Line, to_csv, to_json
from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, NewEvent
from projections.billing.ledger import LINE_COLUMNS, BillingLedger
from projections.billing.queries import BillingQueries
from tests.bench.common import database, report, scratch_schema, stopwatch

T0 = datetime(2027, 3, 1, tzinfo=UTC)
REGION, BOOKLESS = "rgn-" + "1" * 26, "rgn-" + "2" * 26
TENANTS = [new_id("tnt") for _ in range(50)]
RATING_GOAL, EXPORT_GOAL = 50_000.0, 5.0
CONTEXT = CommandContext(actor=Actor.system("bench"), tenant_id="tnt-bench")
STATE = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2027-03-01T00:00:00+00:00"}}'


def books() -> dict[str, dict[str, Any]]:
    def version(number: int, at: datetime, prices: dict[str, str], **over: Any) -> dict[str, Any]:
        return {
            "number": number,
            "effective_from": at.isoformat(),
            "prices": prices,
            "tenant_overrides": over,
        }

    prices = {"vcpu": "12", "memory_gb": "4", "disk_gb:standard": "0.5", "gpu": "250"}
    special = {t: {"discount_percent": "10", "prices": {"vcpu": "11"}} for t in TENANTS[:10]}
    return {
        book_id(REGION): {
            "id": book_id(REGION),
            "currency": "USD",
            "versions": [
                version(1, T0 - timedelta(days=90), prices, **special),
                version(2, T0 + timedelta(days=14, hours=9, minutes=30), {**prices, "vcpu": "13"}),
            ],
            "draft": None,
        },
        PLATFORM_BOOK_ID: {
            "id": PLATFORM_BOOK_ID,
            "currency": "USD",
            "versions": [version(1, T0 - timedelta(days=90), prices)],
            "draft": None,
        },
    }


def intervals(count: int) -> list[Usage]:
    """Four in five a whole settled hour, the rest cut short by a lifecycle event (a stop,
    a resize), one in twenty a catch-up over up to six hours (settlement was down)."""
    rnd = random.Random(1)
    dimensions = ("vcpu", "memory_gb", "disk_gb:standard", "gpu")
    made = []
    for n in range(count):
        hour = T0 + timedelta(hours=rnd.randrange(0, 28 * 24))
        kind = rnd.random()
        if kind < 0.75:
            start, end = hour, hour + timedelta(hours=1)
        elif kind < 0.95:
            start = hour + timedelta(seconds=rnd.randrange(0, 3600))
            end = start + timedelta(seconds=rnd.randrange(1, 3600))
            end = min(end, hour + timedelta(hours=1))
        else:
            start, end = hour, hour + timedelta(hours=rnd.randrange(2, 7))
        made.append(
            Usage(
                resource_id=f"i-{n:026d}",
                tenant_id=rnd.choice(TENANTS),
                region_id=REGION if n % 4 else BOOKLESS,
                project_id=None,
                dimension=dimensions[n % 4],
                quantity=Decimal(rnd.choice(("1", "2", "4", "0.5"))),
                start=start,
                end=end,
            )
        )
    return made


def rating(usages: list[Usage]) -> tuple[float, float, float]:
    """Intervals/s and charges/s through ``rate``; intervals/s of a plain loop over them."""
    priced = books()
    best, charges = float("inf"), 0
    for _ in range(3):
        with stopwatch() as elapsed:
            charges = sum(len(rate(usage, priced)) for usage in usages)
        best = min(best, elapsed[0])
    with stopwatch() as plain:
        seconds = 0.0
        for usage in usages:
            seconds += (usage.end - usage.start).total_seconds()
    return len(usages) / best, charges / best, len(usages) / plain[0]


async def read_rate(url: str, schema: str, count: int) -> float:
    """Events/s of the store read by position, after writing ``count`` events 500 at a time."""
    store = await PostgresEventStore.open(url, schema)
    try:
        for _ in range(0, count, 500):
            events = tuple(
                NewEvent(new_id("i"), 1, "bench:Thing.Created", STATE, CONTEXT.metadata())
                for _ in range(500)
            )
            await store.append(AppendRequest(events=events))
        position, total = 0, 0
        with stopwatch() as elapsed:
            while batch := await store.read_all(after=position, limit=5000):
                position, total = batch[-1].position, total + len(batch)
        return total / elapsed[0]
    finally:
        await store.close()


def statement_lines(count: int) -> list[Line]:
    tenant, rnd = TENANTS[0], random.Random(2)
    lines = []
    for n in range(count):
        start = T0 + timedelta(hours=rnd.randrange(0, 28 * 24))
        amount = rnd.randrange(0, 5000)
        lines.append(
            Line(
                charge_id=f"chg-{n:026d}",
                tenant_id=tenant,
                period="2027-03",
                charge_class="",
                resource_id=f"i-{n % 5000:026d}",
                region_id=REGION,
                project_id=None if n % 3 else "prj-" + "3" * 26,
                dimension=("vcpu", "memory_gb", "disk_gb:standard")[n % 3],
                quantity=("2", "0.5", "40")[n % 3],
                start=start.isoformat(),
                end=(start + timedelta(hours=1)).isoformat(),
                unit_price="12",
                discount_percent="0",
                price_version=f"{book_id(REGION)}@v1",
                amount_minor=amount,
                list_minor=amount,
                currency="USD",
            )
        )
    return lines


def render(lines: list[Line]) -> tuple[float, float]:
    with stopwatch() as csv_seconds:
        to_csv(lines)
    with stopwatch() as json_seconds:
        to_json(lines[0].tenant_id, "2027-03", "closed", "USD", lines, "0" * 64)
    return csv_seconds[0], json_seconds[0]


async def exported(url: str, schema: str, lines: list[Line]) -> tuple[float, float]:
    """Seconds of ``BillingQueries.export`` as CSV and as JSON over a table of ``lines``."""
    columns = [c.strip() for c in LINE_COLUMNS.split(",")] + ["position"]
    fields = {"started_at": "start", "ended_at": "end"}

    def value(line: Line, column: str) -> Any:
        if column == "position":
            return 1
        found = getattr(line, fields.get(column, column))
        return datetime.fromisoformat(found) if column in fields else found

    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute(f"CREATE SCHEMA {schema}")
            await conn.execute(BillingLedger(schema).ddl())
            await conn.copy_records_to_table(
                "billing_charges",
                schema_name=schema,
                columns=columns,
                records=[tuple(value(line, c) for c in columns) for line in lines],
            )
            await conn.execute(
                f"INSERT INTO {schema}.billing_statements (tenant_id, period, currency, status, "
                "content_hash, billed_minor, lines) VALUES ($1, '2027-03', 'USD', 'closed', $2, "
                "$3, $4)",
                lines[0].tenant_id,
                "0" * 64,
                sum(line.amount_minor for line in lines),
                len(lines),
            )
        queries = BillingQueries(schema)
        seconds = []
        for form in ("csv", "json"):
            with stopwatch() as elapsed:
                body = await queries.export(pool, lines[0].tenant_id, "2027-03", form)
            assert body is not None and len(body) > len(lines) * 100
            seconds.append(elapsed[0])
        return seconds[0], seconds[1]
    finally:
        await pool.close()


async def main(scale: float) -> None:
    usages = intervals(int(100_000 * scale))
    lines = statement_lines(int(100_000 * scale))
    rated, charges, plain = rating(usages)
    csv_seconds, json_seconds = render(lines)
    async with (
        database() as url,
        scratch_schema(url, "bench_bill_events") as events_schema,
        scratch_schema(url, "bench_bill_export") as export_schema,
    ):
        reads = await read_rate(url, events_schema, int(100_000 * scale))
        query_csv, query_json = await exported(url, export_schema, lines)
    slowest = max(csv_seconds, json_seconds, query_csv, query_json)
    print(
        f"goals: rating {rated:,.0f}/s vs {RATING_GOAL:,.0f}/s "
        f"({'met' if rated >= RATING_GOAL else 'NOT met'}); slowest export of "
        f"{len(lines):,} lines {slowest:.2f} s vs {EXPORT_GOAL:.0f} s "
        f"({'met' if slowest < EXPORT_GOAL else 'NOT met'})"
    )
    report(
        "billing",
        {
            "rating_intervals_per_s": rated,
            "rating_charges_per_s": charges,
            "plain_loop_intervals_per_s": plain,
            "store_read_by_position_events_per_s": reads,
            "statement_lines": float(len(lines)),
            "to_csv_seconds": csv_seconds,
            "to_json_seconds": json_seconds,
            "export_query_csv_seconds": query_csv,
            "export_query_json_seconds": query_json,
        },
        {
            "rating_vs_store_read": rated / reads,
            "rating_vs_plain_loop": rated / plain,
            "export_csv_vs_goal": query_csv / EXPORT_GOAL,
            "export_json_vs_goal": query_json / EXPORT_GOAL,
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    asyncio.run(main(parser.parse_args().scale))
