"""The PostgreSQL event source: only the events table, on a read-only connection pool."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from gateways.eventstore.hashchain import GENESIS
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import EVENTS_TABLE, checked_schema
from replay.errors import Unreachable, Usage
from replay.source import LINK_FIELDS, MAX_POSITION, LinkField

COLUMNS = (
    "notification_id, originator_id, originator_version, topic, state, "
    "metadata, tenant_id, chain_hash, recorded_at"
)


def recorded(row: Any) -> RecordedEvent:
    return RecordedEvent(
        position=row[0],
        originator_id=row[1],
        originator_version=row[2],
        topic=row[3],
        state=row[4] or b"",
        metadata=row[5] or b"",
        tenant_id=row[6],
        chain_hash=row[7],
        recorded_at=row[8],
    )


async def connect_pool(database_url: str, *, read_only: bool) -> asyncpg.Pool:
    """A small pool; connection failures become ``Unreachable`` (exit 3)."""
    settings = {"application_name": "scloud-replay"}
    if read_only:
        settings["default_transaction_read_only"] = "on"
    try:
        pool = await asyncpg.create_pool(
            database_url, min_size=1, max_size=4, timeout=15, server_settings=settings
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
        raise Unreachable(f"cannot connect to the database: {error}") from error
    except ValueError as error:  # a malformed URL
        raise Usage(f"invalid database URL: {error}") from error
    assert pool is not None
    return pool


class PostgresSource:
    complete = True
    redacted: frozenset[int] = frozenset()  # the store holds every byte as written

    def __init__(self, pool: asyncpg.Pool, schema: str) -> None:
        self.pool = pool
        self.schema = schema
        self.table = f"{schema}.{EVENTS_TABLE}"
        self.description = f"PostgreSQL schema {schema}"

    @classmethod
    async def open(cls, database_url: str, schema: str) -> PostgresSource:
        try:
            checked_schema(schema)
        except ValueError as error:
            raise Usage(str(error)) from None
        pool = await connect_pool(database_url, read_only=True)
        found = await pool.fetchval("SELECT to_regclass($1)", f"{schema}.{EVENTS_TABLE}")
        if found is None:
            await pool.close()
            raise Unreachable(f"no events table {schema}.{EVENTS_TABLE} in that database")
        return cls(pool, schema)

    async def close(self) -> None:
        await self.pool.close()

    async def head(self) -> int:
        sql = f"SELECT coalesce(max(notification_id), 0) FROM {self.table}"  # noqa: S608
        return int(await self.pool.fetchval(sql))

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        until: int = MAX_POSITION,
        tenant_id: str | None = None,
        topic_prefix: str | None = None,
        topic_contains: str | None = None,
    ) -> list[RecordedEvent]:
        args: list[object] = [after, until]
        where = ["notification_id > $1", "notification_id <= $2"]
        if tenant_id is not None:
            args.append(tenant_id)
            where.append(f"tenant_id = ${len(args)}")
        if topic_prefix is not None:
            args.append(topic_prefix)
            where.append(f"starts_with(topic, ${len(args)})")
        if topic_contains is not None:
            args.append(topic_contains)
            where.append(f"strpos(topic, ${len(args)}) > 0")
        args.append(limit)
        sql = (
            f"SELECT {COLUMNS} FROM {self.table} WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY notification_id LIMIT ${len(args)}"
        )
        return [recorded(r) for r in await self.pool.fetch(sql, *args)]

    async def read_stream(self, originator_id: str) -> list[RecordedEvent]:
        sql = (
            f"SELECT {COLUMNS} FROM {self.table} WHERE originator_id = $1 "  # noqa: S608
            "ORDER BY originator_version"
        )
        return [recorded(r) for r in await self.pool.fetch(sql, originator_id)]

    async def read_linked(self, links: Mapping[LinkField, Sequence[str]]) -> list[RecordedEvent]:
        args: list[object] = []
        where: list[str] = []
        for field, values in links.items():
            if field not in LINK_FIELDS:
                raise ValueError(f"not an envelope link field: {field!r}")
            if values:
                args += [field, list(values)]
                where.append(f"m ->> ${len(args) - 1}::text = ANY(${len(args)}::text[])")
        if not where:
            return []
        # The envelope is JSON in a bytea column: convert once per row, then test each field.
        sql = (
            f"SELECT {COLUMNS} FROM (SELECT *, convert_from(metadata, 'UTF8')::jsonb AS m "  # noqa: S608
            f"FROM {self.table} WHERE metadata IS NOT NULL) e "
            f"WHERE {' OR '.join(where)} ORDER BY notification_id"
        )
        return [recorded(r) for r in await self.pool.fetch(sql, *args)]

    async def previous_hashes(self, positions: Sequence[int]) -> dict[int, bytes]:
        sql = (
            f"SELECT p, (SELECT chain_hash FROM {self.table} "  # noqa: S608
            "WHERE notification_id < p ORDER BY notification_id DESC LIMIT 1) "
            "FROM unnest($1::bigint[]) AS p"
        )
        rows = await self.pool.fetch(sql, list(positions))
        return {int(r[0]): r[1] or GENESIS for r in rows}
