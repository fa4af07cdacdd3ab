"""``statement``: a tenant's monthly statement as CSV, JSON or PDF, from PostgreSQL.

By default it reads the live billing read model; ``--rebuild`` first folds the billing
projections from the events into a scratch schema (dropped afterwards) and exports from
there, which shows the statement is what the events say, byte for byte.
"""

from __future__ import annotations

import secrets

from gateways.billing.pdf import statement_pdf
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.schema import EVENTS_TABLE
from projections.billing.ledger import BillingLedger
from projections.billing.queries import BillingQueries
from projections.billing.usage import MeteredUsage
from projections.runner import ProjectionRunner
from replay.errors import Problem, Unreachable
from replay.pgsource import connect_pool

FORMATS = ("csv", "json", "pdf")


async def statement(
    database_url: str, schema: str, tenant_id: str, period: str, form: str, *, rebuild: bool
) -> bytes:
    pool = await connect_pool(database_url, read_only=not rebuild)
    scratch = f"scloud_statement_{secrets.token_hex(5)}"
    try:
        if await pool.fetchval("SELECT to_regclass($1)", f"{schema}.{EVENTS_TABLE}") is None:
            raise Unreachable(f"no events table {schema}.{EVENTS_TABLE} in that database")
        where = schema
        if rebuild:
            store = PostgresEventStore(pool, schema)  # reads only
            for projection in (MeteredUsage(scratch), BillingLedger(scratch)):
                runner = ProjectionRunner(store, projection, batch_size=5000)
                await runner.setup()
                await runner.rebuild()
            where = scratch
        elif await pool.fetchval("SELECT to_regclass($1)", f"{schema}.billing_statements") is None:
            raise Problem(f"no billing read model in {schema}; try --rebuild")
        queries = BillingQueries(where)
        exported = await queries.export(pool, tenant_id, period, "csv" if form == "csv" else "json")
        if exported is None:
            raise Problem(f"{tenant_id} has no statement for {period}")
        if form == "pdf":
            return statement_pdf(exported)
        return exported
    finally:
        if rebuild:
            await pool.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
        await pool.close()
