"""Every live projection rebuilt into a scratch schema and compared with it, row by row.

The live tables and their checkpoints are read in one REPEATABLE READ snapshot, and each
projection is rebuilt only up to its live checkpoint: a worker applying new events while
this runs moves neither side, so every difference reported is a real one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import msgspec

from gateways.eventstore.postgres import PostgresEventStore
from projections.projection import Projection
from projections.runner import ProjectionRunner
from replay.catalog import in_schema, live_projections

_KEY = "scloud_verify_key"


class RowDifference(msgspec.Struct, kw_only=True):
    key: str
    kind: str
    """``changed``, ``only live`` or ``only rebuilt``."""
    columns: dict[str, tuple[str, str]] = {}
    """Column → (live value, rebuilt value), shortened, for changed rows."""


class TableReport(msgspec.Struct, kw_only=True):
    projection: str
    table: str
    checkpoint: int
    behind: int = 0
    """Events stored (in the same snapshot) that the live projection has not applied yet."""
    rows: int = 0
    differences: int = 0
    first: list[RowDifference] = []
    problem: str | None = None
    """Why no comparison could be made (no such table, never ran here)."""

    @property
    def matches(self) -> bool:
        return self.problem is None and self.differences == 0


class _UpTo(PostgresEventStore):
    """The store as a rebuild sees it: ending at the live projection's checkpoint."""

    def __init__(self, pool: asyncpg.Pool, schema: str, head: int) -> None:
        super().__init__(pool, schema)
        self._head = head

    async def last_position(self) -> int:
        return self._head


ProgressHook = Callable[[str, int, int], None]
"""(projection, position reached, head) while rebuilding."""


async def compare_projections(
    pool: asyncpg.Pool, schema: str, *, show: int = 5, progress: ProgressHook | None = None
) -> list[TableReport]:
    scratch = "scloud_verify_" + secrets.token_hex(5)
    reports: list[TableReport] = []
    async with pool.acquire() as snapshot:
        transaction = snapshot.transaction(isolation="repeatable_read", readonly=True)
        await transaction.start()
        try:
            checkpoints = await _checkpoints(snapshot, schema)
            for live in live_projections(schema):
                found = await _compare_one(
                    pool, snapshot, live, schema, scratch, checkpoints, show, progress
                )
                behind = await events_after(snapshot, schema, checkpoints.get(live.name, 0))
                for report in found:
                    report.behind = behind
                reports += found
        finally:
            await transaction.rollback()
            await pool.execute(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
    return reports


async def events_after(conn: asyncpg.Connection, schema: str, position: int) -> int:
    """How many stored events come after ``position``."""
    table = f"{schema}.scloud_events"
    if await conn.fetchval("SELECT to_regclass($1)", table) is None:
        return 0
    sql = f"SELECT count(*) FROM {table} WHERE notification_id > $1"  # noqa: S608
    return int(await conn.fetchval(sql, position))


async def store_head(conn: asyncpg.Connection, schema: str) -> int:
    """The newest stored event's position (0 for an empty store)."""
    table = f"{schema}.scloud_events"
    if await conn.fetchval("SELECT to_regclass($1)", table) is None:
        return 0
    return int(await conn.fetchval(f"SELECT coalesce(max(notification_id), 0) FROM {table}") or 0)  # noqa: S608


async def checkpoints_of(pool: asyncpg.Pool, schema: str) -> dict[str, int]:
    async with pool.acquire() as conn:
        return await _checkpoints(conn, schema)


async def _checkpoints(conn: asyncpg.Connection, schema: str) -> dict[str, int]:
    table = f"{schema}.scloud_checkpoints"
    if await conn.fetchval("SELECT to_regclass($1)", table) is None:
        return {}
    rows = await conn.fetch(f"SELECT projection, position FROM {table}")  # noqa: S608
    return {r[0]: int(r[1]) for r in rows}


async def _compare_one(
    pool: asyncpg.Pool,
    snapshot: asyncpg.Connection,
    live: Projection,
    schema: str,
    scratch: str,
    checkpoints: dict[str, int],
    show: int,
    progress: ProgressHook | None,
) -> list[TableReport]:
    checkpoint = checkpoints.get(live.name)
    reports = [
        TableReport(projection=live.name, table=table, checkpoint=checkpoint or 0)
        for table in live.tables()
    ]
    missing = [
        r.table
        for r in reports
        if await snapshot.fetchval("SELECT to_regclass($1)", r.table) is None
    ]
    if checkpoint is None or missing:
        for report in reports:
            report.problem = (
                f"no live table {report.table}"
                if report.table in missing
                else "no checkpoint: this projection never ran on this schema"
            )
        return reports
    rebuilt = in_schema(live, scratch)
    runner = ProjectionRunner(_UpTo(pool, schema, checkpoint), rebuilt, pool=pool, batch_size=5000)
    await runner.setup()
    await runner.rebuild(
        progress=None if progress is None else lambda _n, at: progress(live.name, at, checkpoint)
    )
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        for report, rebuilt_table in zip(reports, rebuilt.tables(), strict=True):
            await _compare_table(snapshot, conn, report, rebuilt_table, show)
    return reports


async def _rows(
    conn: asyncpg.Connection, table: str, key: str
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    # Ordered by the key's text in byte order ("C"), which is Python's str order too.
    sql = (
        f'SELECT coalesce("{key}"::text, \'\') COLLATE "C" AS {_KEY}, t.* FROM {table} t '  # noqa: S608
        'ORDER BY 1, t::text COLLATE "C"'
    )
    cursor = await conn.cursor(sql)
    while rows := await cursor.fetch(2000):
        for row in rows:
            values = dict(row)
            yield values.pop(_KEY), values


async def _compare_table(
    live_conn: asyncpg.Connection,
    rebuilt_conn: asyncpg.Connection,
    report: TableReport,
    rebuilt_table: str,
    show: int,
) -> None:
    schema, _, name = report.table.partition(".")
    key = await live_conn.fetchval(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position LIMIT 1",
        schema,
        name,
    )
    live_rows = _rows(live_conn, report.table, key)
    rebuilt_rows = _rows(rebuilt_conn, rebuilt_table, key)
    left = await anext(live_rows, None)
    right = await anext(rebuilt_rows, None)
    while left is not None or right is not None:
        difference: RowDifference | None = None
        if right is None or (left is not None and left[0] < right[0]):
            assert left is not None
            difference = RowDifference(key=left[0], kind="only live")
            left = await anext(live_rows, None)
        elif left is None or right[0] < left[0]:
            difference = RowDifference(key=right[0], kind="only rebuilt")
            right = await anext(rebuilt_rows, None)
        else:
            changed = _changed(left[1], right[1])
            if changed:
                difference = RowDifference(key=left[0], kind="changed", columns=changed)
            left = await anext(live_rows, None)
            right = await anext(rebuilt_rows, None)
        report.rows += 1
        if difference is not None:
            report.differences += 1
            if len(report.first) < show:
                report.first.append(difference)


def _changed(live: dict[str, Any], rebuilt: dict[str, Any]) -> dict[str, tuple[str, str]]:
    changed: dict[str, tuple[str, str]] = {}
    for column in dict.fromkeys([*live, *rebuilt]):
        mine, theirs = live.get(column), rebuilt.get(column)
        if mine == theirs:
            continue
        documents = _json_object(mine), _json_object(theirs)
        if documents[0] is not None and documents[1] is not None:
            # A jsonb document: name the keys that differ, not the whole text.
            for key in dict.fromkeys([*documents[0], *documents[1]]):
                a, b = documents[0].get(key), documents[1].get(key)
                if a != b:
                    changed[f"{column}.{key}"] = (_short(a), _short(b))
        else:
            changed[column] = (_short(mine), _short(theirs))
    return changed


def _json_object(value: object) -> dict[str, Any] | None:
    if not isinstance(value, str) or not value.startswith("{"):
        return None
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 70 else text[:67] + "..."


def describe(reports: list[TableReport]) -> list[str]:
    lines: list[str] = []
    for r in reports:
        where = f"{r.projection} ({r.table}, checkpoint {r.checkpoint}, {r.behind} behind the head)"
        if r.problem is not None:
            lines.append(f"projection {where}: CANNOT COMPARE: {r.problem}")
            continue
        if r.matches:
            lines.append(f"projection {where}: {r.rows} rows, identical to a rebuild")
            continue
        lines.append(f"projection {where}: {r.differences} of {r.rows} rows DIFFER from a rebuild")
        for d in r.first:
            if d.kind != "changed":
                lines.append(f"  {d.key}: {d.kind}")
            for column, (live, rebuilt) in d.columns.items():
                lines.append(f"  {d.key}: {column}: live {live} != rebuilt {rebuilt}")
        if r.differences > len(r.first):
            lines.append(f"  … and {r.differences - len(r.first)} more")
    return lines
