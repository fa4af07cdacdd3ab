"""The SQLite event source: the file ``scloud replay export`` writes, read back read-only.

The file has the events table's columns, plus ``previous_hash`` (the chain hash of the
event before each one in the whole store), so the links of a one-tenant export can be
checked even though other tenants' events sit between them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gateways.eventstore.hashchain import GENESIS
from gateways.eventstore.records import RecordedEvent
from replay.errors import Unreachable
from replay.source import LINK_FIELDS, MAX_POSITION, LinkField

DDL = """
CREATE TABLE scloud_events (
    originator_id TEXT NOT NULL,
    originator_version INTEGER NOT NULL,
    topic TEXT,
    state BLOB,
    notification_id INTEGER PRIMARY KEY,
    event_id TEXT,
    tenant_id TEXT,
    metadata BLOB,
    chain_hash BLOB,
    recorded_at TEXT NOT NULL,
    previous_hash BLOB,
    UNIQUE (originator_id, originator_version)
);
CREATE INDEX scloud_events_tenant ON scloud_events (tenant_id, notification_id);
CREATE TABLE scloud_export (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE scloud_redacted (notification_id INTEGER PRIMARY KEY, fields TEXT NOT NULL);
"""

_COLUMNS = (
    "notification_id, originator_id, originator_version, topic, state, "
    "metadata, tenant_id, chain_hash, recorded_at"
)


def _recorded(row: Any) -> RecordedEvent:
    return RecordedEvent(
        position=row[0],
        originator_id=row[1],
        originator_version=row[2],
        topic=row[3],
        state=row[4] or b"",
        metadata=row[5] or b"",
        tenant_id=row[6],
        chain_hash=row[7],
        recorded_at=datetime.fromisoformat(row[8]),
    )


def _redacted_positions(conn: sqlite3.Connection) -> frozenset[int]:
    """Events an unsealed export redacted (exports older than redaction have no such table)."""
    try:
        rows = conn.execute("SELECT notification_id FROM scloud_redacted").fetchall()
    except sqlite3.OperationalError:
        return frozenset()
    return frozenset(int(row[0]) for row in rows)


class SqliteSource:
    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.description = f"SQLite export {path}"
        meta = dict(conn.execute("SELECT key, value FROM scloud_export").fetchall())
        self.meta: dict[str, str] = {str(k): str(v) for k, v in meta.items()}
        self.complete = self.meta.get("complete") == "true"
        self.redacted = _redacted_positions(conn)

    @classmethod
    def open(cls, path: Path) -> SqliteSource:
        if not path.is_file():
            raise Unreachable(f"no such file: {path}")
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        except sqlite3.DatabaseError as error:
            conn.close()
            raise Unreachable(f"{path} is not a SQLite file: {error}") from None
        if not {"scloud_events", "scloud_export"} <= tables:
            conn.close()
            raise Unreachable(f"{path} is not a scloud replay export (no scloud_events table)")
        return cls(conn, path)

    async def close(self) -> None:
        self.conn.close()

    async def head(self) -> int:
        row = self.conn.execute("SELECT coalesce(max(notification_id), 0) FROM scloud_events")
        return int(row.fetchone()[0])

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
        where = ["notification_id > ?", "notification_id <= ?"]
        if tenant_id is not None:
            args.append(tenant_id)
            where.append("tenant_id = ?")
        if topic_prefix is not None:
            args += [topic_prefix, topic_prefix]
            where.append("substr(topic, 1, length(?)) = ?")
        if topic_contains is not None:
            args.append(topic_contains)
            where.append("instr(topic, ?) > 0")
        args.append(limit)
        sql = (
            f"SELECT {_COLUMNS} FROM scloud_events WHERE {' AND '.join(where)} "  # noqa: S608
            "ORDER BY notification_id LIMIT ?"
        )
        return [_recorded(r) for r in self.conn.execute(sql, args)]

    async def read_stream(self, originator_id: str) -> list[RecordedEvent]:
        sql = (
            f"SELECT {_COLUMNS} FROM scloud_events WHERE originator_id = ? "  # noqa: S608
            "ORDER BY originator_version"
        )
        return [_recorded(r) for r in self.conn.execute(sql, [originator_id])]

    async def read_linked(self, links: Mapping[LinkField, Sequence[str]]) -> list[RecordedEvent]:
        args: list[object] = []
        where: list[str] = []
        for field, values in links.items():
            if field not in LINK_FIELDS:
                raise ValueError(f"not an envelope link field: {field!r}")
            if values:
                args += [f"$.{field}", json.dumps(list(values))]
                where.append(
                    "json_extract(CAST(metadata AS TEXT), ?) IN (SELECT value FROM json_each(?))"
                )
        if not where:
            return []
        sql = (
            f"SELECT {_COLUMNS} FROM scloud_events WHERE metadata IS NOT NULL "  # noqa: S608
            f"AND ({' OR '.join(where)}) ORDER BY notification_id"
        )
        return [_recorded(r) for r in self.conn.execute(sql, args)]

    async def previous_hashes(self, positions: Sequence[int]) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        for position in positions:
            row = self.conn.execute(
                "SELECT previous_hash FROM scloud_events WHERE notification_id = ?", [position]
            ).fetchone()
            if row is not None and row[0] is not None:
                found[position] = bytes(row[0])
            else:  # not exported: the event before it in this file is the best we know
                before = self.conn.execute(
                    "SELECT chain_hash FROM scloud_events WHERE notification_id < ? "
                    "ORDER BY notification_id DESC LIMIT 1",
                    [position],
                ).fetchone()
                found[position] = GENESIS if before is None else bytes(before[0])
        return found
