"""``export``: a tenant's events for an auditor, as JSON lines and as a SQLite file.

Both files hold the same events with their exact stored bytes; ``manifest.json`` gives the
counts, the first and last positions and chain hashes, and each file's SHA-256. Each event
also carries ``previous_hash`` (the chain hash before it in the whole store), so its link
can be checked without the other tenants' events (``scloud replay verify --sqlite``).

Secret fields (``domain/secrets.py``) are redacted, as in every other export, and the
events they were redacted from are listed in ``scloud_redacted``: their links cannot be
checked without the stored bytes, and ``verify`` says so. A sealed export (``--sealed``,
for an auditor who must check every link) keeps the exact bytes, secrets included, in
files only their owner may read.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import sqlite3
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec

from gateways.bus.redaction import redact
from gateways.eventstore.records import RecordedEvent
from replay.aggregates import envelope_of
from replay.errors import Usage
from replay.source import EventSource, batches
from replay.sqlitesource import DDL

FORMAT = "scloud-replay-export/1"
FILES = ("events.jsonl", "events.sqlite", "manifest.json")


@dataclass(frozen=True)
class Selection:
    tenant: str | None
    """None exports every tenant's events (and events of none)."""
    since: datetime | None = None
    """Inclusive, on the time the store recorded each event."""
    until: datetime | None = None
    """Exclusive."""
    complete_streams: bool = False
    """Also every earlier event of each resource exported (creations written without
    the tenant's id, such as a tenant's own creation by an admin)."""
    sealed: bool = False
    """Exact stored bytes, secret fields included; otherwise they are redacted."""

    def wants(self, event: RecordedEvent) -> bool:
        return (self.since is None or event.recorded_at >= self.since) and (
            self.until is None or event.recorded_at < self.until
        )


async def export(
    source: EventSource,
    selection: Selection,
    out: Path,
    *,
    on_batch: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Write the three files into ``out``; returns the manifest."""
    partial = _prepare(out, sealed=selection.sealed)
    conn = sqlite3.connect(partial)
    try:
        conn.executescript(DDL)
        streams: set[str] = set()
        async for batch in batches(source, tenant_id=selection.tenant, on_batch=on_batch):
            chosen = [e for e in batch if selection.wants(e)]
            await _insert(conn, source, chosen, sealed=selection.sealed)
            streams.update(e.originator_id for e in chosen)
        if selection.complete_streams:
            owners = streams | ({selection.tenant} if selection.tenant else set())
            for stream in sorted(owners):
                earlier = [
                    e
                    for e in await source.read_stream(stream)
                    if selection.until is None or e.recorded_at < selection.until
                ]
                await _insert(conn, source, earlier, sealed=selection.sealed)
        whole = Selection(tenant=None, sealed=selection.sealed)
        complete = source.complete and selection == whole
        conn.executemany(
            "INSERT INTO scloud_export (key, value) VALUES (?, ?)",
            [
                ("format", FORMAT),
                ("tenant", selection.tenant or "*"),
                ("complete", "true" if complete else "false"),
                ("sealed", "true" if selection.sealed else "false"),
            ],
        )
        conn.commit()
    finally:
        conn.close()
    return _finish(partial, out, source, selection)


def _prepare(out: Path, *, sealed: bool) -> Path:
    """The file to write the SQLite database to, in an empty or new ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    if sealed:
        out.chmod(0o700)  # password hashes inside: the owner's eyes only
    existing = [name for name in FILES if (out / name).exists()]
    if existing:
        raise Usage(f"{out} already holds {', '.join(existing)}; choose an empty directory")
    partial = out / "events.sqlite.partial"
    partial.unlink(missing_ok=True)
    return partial


def _finish(partial: Path, out: Path, source: EventSource, selection: Selection) -> dict[str, Any]:
    database = partial.rename(out / "events.sqlite")
    _write_jsonl(database, out / "events.jsonl")
    manifest = _manifest(database, out, source, selection)
    (out / "manifest.json").write_bytes(msgspec.json.format(msgspec.json.encode(manifest)) + b"\n")
    return manifest


async def _insert(
    conn: sqlite3.Connection, source: EventSource, events: list[RecordedEvent], *, sealed: bool
) -> None:
    if not events:
        return
    previous = await source.previous_hashes([e.position for e in events])
    states: dict[int, bytes] = {}
    if not sealed:
        hidden: list[tuple[int, str]] = []
        for e in events:
            redacted = redact(e.topic, e.state)
            states[e.position] = redacted.state
            if redacted.hidden:
                hidden.append((e.position, ",".join(redacted.hidden)))
        conn.executemany(
            "INSERT OR IGNORE INTO scloud_redacted (notification_id, fields) VALUES (?, ?)",
            hidden,
        )
    conn.executemany(
        "INSERT OR IGNORE INTO scloud_events (originator_id, originator_version, topic, state, "
        "notification_id, event_id, tenant_id, metadata, chain_hash, recorded_at, "
        "previous_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                e.originator_id,
                e.originator_version,
                e.topic,
                states.get(e.position, e.state),
                e.position,
                _event_id(e),
                e.tenant_id,
                e.metadata or None,
                e.chain_hash,
                e.recorded_at.astimezone(UTC).isoformat(),
                previous.get(e.position),
            )
            for e in events
        ],
    )


def _event_id(event: RecordedEvent) -> str | None:
    envelope = envelope_of(event)
    if envelope is None:
        return None
    with contextlib.suppress(ValueError):
        return str(uuid.UUID(envelope.event_id))  # as PostgreSQL prints its uuid column
    return envelope.event_id


def _bytes(value: bytes | None) -> Any:
    """Exact stored bytes: as text when they are UTF-8 (JSON always is), else base64."""
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def _rows(database: Path) -> Iterable[tuple[Any, ...]]:
    conn = sqlite3.connect(database)
    try:
        yield from conn.execute(
            "SELECT e.notification_id, originator_id, originator_version, topic, event_id, "
            "tenant_id, recorded_at, state, metadata, chain_hash, previous_hash, r.fields "
            "FROM scloud_events e LEFT JOIN scloud_redacted r USING (notification_id) "
            "ORDER BY e.notification_id"
        )
    finally:
        conn.close()


def _write_jsonl(database: Path, target: Path) -> None:
    encode = msgspec.json.Encoder().encode
    with target.open("wb") as out:
        for row in _rows(database):
            line = {
                "position": row[0],
                "originator_id": row[1],
                "originator_version": row[2],
                "topic": row[3],
                "event_id": row[4],
                "tenant_id": row[5],
                "recorded_at": row[6],
                "state": _bytes(row[7]),
                "metadata": _bytes(row[8]),
                "chain_hash": row[9].hex() if row[9] else None,
                "previous_hash": row[10].hex() if row[10] else None,
            }
            if row[11]:
                line["redacted"] = row[11].split(",")
            out.write(encode(line) + b"\n")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _manifest(
    database: Path, out: Path, source: EventSource, selection: Selection
) -> dict[str, Any]:
    conn = sqlite3.connect(database)
    try:
        redacted = conn.execute("SELECT count(*) FROM scloud_redacted").fetchone()[0]
        count, streams, first, last = conn.execute(
            "SELECT count(*), count(DISTINCT originator_id), min(notification_id), "
            "max(notification_id) FROM scloud_events"
        ).fetchone()
        hashes = dict(
            conn.execute(
                "SELECT notification_id, chain_hash FROM scloud_events "
                "WHERE notification_id IN (?, ?)",
                [first, last],
            ).fetchall()
        )
        complete = conn.execute("SELECT value FROM scloud_export WHERE key = 'complete'")
        is_complete = complete.fetchone()[0] == "true"
    finally:
        conn.close()

    def chain(position: int | None) -> str | None:
        value = hashes.get(position)
        return value.hex() if value else None

    return {
        "format": FORMAT,
        "exported_at": datetime.now(UTC).isoformat(),
        "source": source.description,
        "tenant": selection.tenant,
        "since": selection.since.isoformat() if selection.since else None,
        "until": selection.until.isoformat() if selection.until else None,
        "complete_streams": selection.complete_streams,
        "complete": is_complete,
        "sealed": selection.sealed,
        "redacted_events": redacted,
        "events": count,
        "resources": streams,
        "first_position": first,
        "last_position": last,
        "first_chain_hash": chain(first),
        "last_chain_hash": chain(last),
        "files": {
            name: {"sha256": _sha256(out / name), "bytes": (out / name).stat().st_size}
            for name in ("events.jsonl", "events.sqlite")
        },
    }
