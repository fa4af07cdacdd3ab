"""Test projections: a counter that double-applied batches would visibly corrupt."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from collections.abc import Sequence

import asyncpg

from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import RecordedEvent
from projections.runner import ProjectionRunner


class EventCounter:
    """Counts events per (tenant, event type) by increments: not idempotent on purpose."""

    name = "event_counter"

    def __init__(self, schema: str, *, pause: float = 0.0) -> None:
        self.schema = schema
        self.table = f"{schema}.event_counts"
        self.pause = pause

    def ddl(self) -> str:
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            "tenant_id text NOT NULL, topic text NOT NULL, n bigint NOT NULL,"
            " PRIMARY KEY (tenant_id, topic))"
        )

    def tables(self) -> Sequence[str]:
        return (self.table,)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        counts = Counter((e.tenant_id or "", e.topic) for e in events)
        await conn.executemany(
            f"INSERT INTO {self.table} VALUES ($1, $2, $3) "
            "ON CONFLICT (tenant_id, topic) DO UPDATE SET n = event_counts.n + excluded.n",
            [(tenant, topic, n) for (tenant, topic), n in counts.items()],
        )
        if self.pause:
            # The rows are written but not committed: the moment a kill must not leave a trace.
            print(f"uncommitted {events[-1].position}", flush=True)
            await asyncio.sleep(self.pause)


async def _run(dsn: str, schema: str) -> None:
    store = await PostgresEventStore.open(dsn, schema)
    runner = ProjectionRunner(store, EventCounter(schema, pause=0.2), batch_size=100)
    await runner.setup()
    await runner.catch_up()
    print("finished", flush=True)
    await store.close()


if __name__ == "__main__":
    asyncio.run(_run(sys.argv[1], sys.argv[2]))
