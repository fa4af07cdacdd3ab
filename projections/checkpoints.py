"""Each projection's position, written in the same transaction as its table changes."""

from __future__ import annotations

import asyncpg

from gateways.eventstore.schema import checked_schema

CHANNEL = "scloud_projection_progress"


class CheckpointRegression(Exception):
    """A checkpoint may only move forward; a lower one arriving later is refused."""


class Checkpoints:
    def __init__(self, schema: str) -> None:
        s = checked_schema(schema)
        self.table = f"{s}.scloud_checkpoints"
        self.ddl = (
            f"CREATE SCHEMA IF NOT EXISTS {s};"
            f"CREATE TABLE IF NOT EXISTS {self.table} ("
            " projection text PRIMARY KEY, position bigint NOT NULL,"
            " updated_at timestamptz NOT NULL DEFAULT now())"
        )
        self._lock = f"SELECT position FROM {self.table} WHERE projection = $1 FOR UPDATE"
        self._create = (
            f"INSERT INTO {self.table} (projection, position) VALUES ($1, 0) ON CONFLICT DO NOTHING"
        )
        # The move and its notice in one round trip: no row comes back if it did not move.
        self._advance = (
            f"WITH moved AS (UPDATE {self.table} SET position = $2, updated_at = now() "
            "WHERE projection = $1 AND position < $2 RETURNING 1) "
            "SELECT pg_notify($3, $4) FROM moved"
        )
        self._reset = f"UPDATE {self.table} SET position = 0 WHERE projection = $1"
        self._read = f"SELECT position FROM {self.table} WHERE projection = $1"
        self._schema = s

    async def lock(self, conn: asyncpg.Connection, projection: str) -> int:
        """Lock the projection's row for this transaction and return its position."""
        position = await conn.fetchval(self._lock, projection)
        if position is None:
            await conn.execute(self._create, projection)
            position = await conn.fetchval(self._lock, projection)
        return int(position)

    async def advance(self, conn: asyncpg.Connection, projection: str, position: int) -> None:
        moved = await conn.fetch(
            self._advance, projection, position, CHANNEL, f"{self._schema} {projection} {position}"
        )
        if len(moved) != 1:
            raise CheckpointRegression(
                f"{projection}: checkpoint {position} is not after the stored one"
            )

    async def reset(self, conn: asyncpg.Connection, projection: str) -> None:
        await conn.execute(self._reset, projection)

    async def read(self, conn: asyncpg.Connection | asyncpg.Pool, projection: str) -> int:
        position = await conn.fetchval(self._read, projection)
        return 0 if position is None else int(position)
