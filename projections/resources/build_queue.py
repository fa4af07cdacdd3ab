"""How far behind the builds are: what backpressure on creates reads."""

from __future__ import annotations

import asyncpg
import msgspec

from gateways.eventstore.schema import checked_schema

WAITING = ("pending", "building")
"""An instance placed but not yet running on its host."""
DISPATCHER = "host_command_dispatcher"
"""The checkpoint of the process that sends steps to the hosts."""


class BuildQueue(msgspec.Struct, frozen=True):
    waiting: int
    """Instances created and not yet built."""
    oldest_seconds: float
    """How long the oldest of them has waited (0 when none does)."""
    dispatched_to: int
    """The store position up to which steps have been sent to hosts."""


class BuildQueueQuery:
    def __init__(self, schema: str) -> None:
        s = checked_schema(schema)
        self._sql = (
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(updated_at)), 0)::float8, "
            f"(SELECT position FROM {s}.scloud_checkpoints WHERE projection = $2) "
            f"FROM {s}.resource_documents WHERE kind = 'i' AND view->>'status' = ANY($1)"
        )

    async def read(self, pool: asyncpg.Pool) -> BuildQueue:
        row = await pool.fetchrow(self._sql, list(WAITING), DISPATCHER)
        assert row is not None  # an aggregate query answers one row
        return BuildQueue(int(row[0]), float(row[1]), int(row[2] or 0))
