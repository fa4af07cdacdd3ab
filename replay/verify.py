"""``verify``: the hash chain over any source; on PostgreSQL also every live projection
rebuilt in a scratch schema and compared row by row; on an export also its manifest."""

from __future__ import annotations

import asyncio
import hashlib
import json

import asyncpg

from replay import chain, compare
from replay.catalog import live_projections
from replay.console import Bar, Consoles
from replay.errors import Usage
from replay.pgsource import PostgresSource, connect_pool
from replay.source import EventSource
from replay.sqlitesource import SqliteSource


async def verify(
    source: EventSource,
    consoles: Consoles,
    *,
    database_url: str | None,
    chain_only: bool,
    show: int,
    at_head: bool = False,
    wait: float = 30.0,
) -> bool:
    """Print what was checked; True when everything matched."""
    with consoles.progress() as progress:
        bar = Bar(progress, "checking the hash chain", await source.head())
        report = await chain.check_chain(source, on_batch=lambda at, n: bar.at(at, n))
    _say(consoles, chain.describe(report, source.description))
    ok = report.intact
    if isinstance(source, SqliteSource):
        lines, matches = _check_manifest(source)
        _say(consoles, lines)
        ok = ok and matches
    elif isinstance(source, PostgresSource) and database_url is not None and not chain_only:
        if not report.intact:
            _say(consoles, ["projections not compared: the events themselves were altered"])
            return False
        reports = await _compare(source, database_url, consoles, show, wait if at_head else 0)
        _say(consoles, compare.describe(reports))
        ok = all(r.matches for r in reports)
        behind = sorted({(r.projection, r.behind) for r in reports if r.behind and at_head})
        for name, count in behind:
            _say(consoles, [f"projection {name} is {count} events BEHIND the head (--at-head)"])
        ok = ok and not behind
    return ok


async def _compare(
    source: PostgresSource, database_url: str, consoles: Consoles, show: int, wait: float
) -> list[compare.TableReport]:
    pool = await connect_pool(database_url, read_only=False)
    try:
        if wait > 0:
            await _until_at_head(pool, source.schema, wait)
        return await _rebuild_and_compare(pool, source.schema, consoles, show)
    except (
        asyncpg.InsufficientPrivilegeError,
        asyncpg.ReadOnlySQLTransactionError,
    ) as error:
        raise Usage(
            f"cannot rebuild into a scratch schema here ({error}); "
            "on a read-only database use verify --chain-only"
        ) from None
    finally:
        await pool.close()


async def _until_at_head(pool: asyncpg.Pool, schema: str, wait: float) -> None:
    """Give the live projections up to ``wait`` seconds to reach the head as it is now."""
    async with pool.acquire() as conn:
        head = await compare.store_head(conn, schema)
    names = [p.name for p in live_projections(schema)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while loop.time() < deadline:
        checkpoints = await compare.checkpoints_of(pool, schema)
        if all(checkpoints.get(name, 0) >= head for name in names):
            return
        await asyncio.sleep(0.2)


async def _rebuild_and_compare(
    pool: asyncpg.Pool, schema: str, consoles: Consoles, show: int
) -> list[compare.TableReport]:
    with consoles.progress() as progress:
        bars: dict[str, Bar] = {}

        def on_progress(name: str, at: int, head: int) -> None:
            if name not in bars:
                bars[name] = Bar(progress, f"rebuilding {name}", head)
            bars[name].at(at)

        return await compare.compare_projections(pool, schema, show=show, progress=on_progress)


def _check_manifest(source: SqliteSource) -> tuple[list[str], bool]:
    path = source.path.parent / "manifest.json"
    if not path.is_file():
        return [f"no manifest.json beside {source.path}: file hashes not checked"], True
    manifest = json.loads(path.read_text())
    expected = manifest.get("files", {}).get(source.path.name, {}).get("sha256")
    actual = hashlib.sha256(source.path.read_bytes()).hexdigest()
    first, last = manifest.get("first_position"), manifest.get("last_position")
    rows = dict(
        source.conn.execute(
            "SELECT notification_id, chain_hash FROM scloud_events WHERE notification_id IN (?, ?)",
            [first, last],
        ).fetchall()
    )
    problems = []
    if expected != actual:
        problems.append(f"{source.path.name}: SHA-256 {actual} but the manifest says {expected}")
    for position, key in ((first, "first_chain_hash"), (last, "last_chain_hash")):
        stored = rows.get(position)
        if (stored.hex() if stored else None) != manifest.get(key):
            problems.append(f"{key}: position {position} does not hold the manifest's hash")
    if problems:
        return ["manifest.json MISMATCH:", *(f"  {p}" for p in problems)], False
    return [f"manifest.json matches: {source.path.name} SHA-256 and first/last chain hashes"], True


def _say(consoles: Consoles, lines: list[str]) -> None:
    for line in lines:
        consoles.out.print(line, markup=False)
