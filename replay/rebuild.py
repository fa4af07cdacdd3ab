"""``rebuild PROJECTION``: one live projection emptied and replayed from position 0, in place."""

from __future__ import annotations

from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.schema import EVENTS_TABLE
from projections.runner import ProjectionRunner
from replay.catalog import live_projections
from replay.console import Bar, Consoles
from replay.errors import Unreachable, Usage
from replay.pgsource import connect_pool


async def rebuild(database_url: str, schema: str, name: str, consoles: Consoles) -> str:
    known = {p.name: p for p in live_projections(schema)}
    if name not in known:
        raise Usage(f"unknown projection {name!r}; known: {', '.join(sorted(known))}")
    pool = await connect_pool(database_url, read_only=False)
    try:
        if await pool.fetchval("SELECT to_regclass($1)", f"{schema}.{EVENTS_TABLE}") is None:
            raise Unreachable(f"no events table {schema}.{EVENTS_TABLE} in that database")
        store = PostgresEventStore(pool, schema)  # reads only: no schema setup, no appends
        runner = ProjectionRunner(store, known[name], batch_size=5000)
        await runner.setup()
        with consoles.progress() as progress:
            bar = Bar(progress, f"rebuilding {name}", await store.last_position())
            applied, seconds = await runner.rebuild(progress=lambda n, at: bar.at(at, n))
    finally:
        await pool.close()
    rate = applied / seconds if seconds > 0 else 0.0
    return f"rebuilt {name}: {applied} events in {seconds:.2f}s ({rate:,.0f} events/s)"
