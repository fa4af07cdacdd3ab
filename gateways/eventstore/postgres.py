"""The asyncpg event store: append through group commit, read by stream or position."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from gateways.eventstore.channels import ChannelWatch
from gateways.eventstore.groupcommit import BatchWriter, GroupCommitter
from gateways.eventstore.notifier import AppendNotifier
from gateways.eventstore.records import (
    AppendRequest,
    AppendResult,
    CommandRecord,
    RecordedEvent,
)
from gateways.eventstore.schema import (
    EVENTS_TABLE,
    SNAPSHOTS_TABLE,
    checked_schema,
    ensure_schema,
    notify_channel,
)
from gateways.eventstore.unavailable import connect

log = logging.getLogger(__name__)
CLOSE_TIMEOUT = 8.0
"""Seconds a store may take to close (SIGTERM must end a process within 10)."""

_COLUMNS = (
    "notification_id, originator_id, originator_version, topic, state, "
    "metadata, tenant_id, chain_hash, recorded_at"
)


_HEADER_COLUMNS = (
    "notification_id, originator_id, originator_version, topic, ''::bytea, "
    "''::bytea, tenant_id, NULL::bytea, recorded_at"
)


def _recorded(row: asyncpg.Record) -> RecordedEvent:
    return RecordedEvent(
        position=row[0],
        originator_id=row[1],
        originator_version=row[2],
        topic=row[3],
        state=row[4],
        metadata=row[5] or b"",
        tenant_id=row[6],
        chain_hash=row[7],
        recorded_at=row[8],
    )


class PostgresEventStore:
    """The one source of truth. Safe to share between tasks; one per process is enough."""

    def __init__(self, pool: asyncpg.Pool, schema: str, *, max_batch: int = 1024) -> None:
        self.pool = pool
        self.schema = checked_schema(schema)
        self._writer = BatchWriter(schema)
        self._committer = GroupCommitter(pool, self._writer, max_batch=max_batch)
        self._notifier = AppendNotifier(pool, notify_channel(self.schema))
        s, t = self.schema, EVENTS_TABLE
        self._sql_stream = (
            f"SELECT {_COLUMNS} FROM {s}.{t} WHERE originator_id = $1 "
            "AND originator_version > $2 AND originator_version <= $3 "
            "ORDER BY originator_version"
        )
        self._sql_headers = (
            f"SELECT {_HEADER_COLUMNS} FROM {s}.{t} WHERE notification_id > $1 "
            "AND notification_id <= $3 ORDER BY notification_id LIMIT $2"
        )
        self._sql_all = (
            f"SELECT {_COLUMNS} FROM {s}.{t} WHERE notification_id > $1 "
            "AND notification_id <= $3 ORDER BY notification_id LIMIT $2"
        )
        self._sql_all_tenant = (
            f"SELECT {_COLUMNS} FROM {s}.{t} WHERE tenant_id = $4 AND notification_id > $1 "
            "AND notification_id <= $3 ORDER BY tenant_id, notification_id LIMIT $2"
        )
        self._sql_last = f"SELECT coalesce(max(notification_id), 0) FROM {s}.{t}"
        self._sql_position_of = (
            f"SELECT notification_id FROM {s}.{t} WHERE originator_id = $1 "
            "ORDER BY originator_version DESC LIMIT 1"
        )
        self._sql_put_snapshot = (
            f"INSERT INTO {s}.{SNAPSHOTS_TABLE} (originator_id, originator_version, topic, "
            "state) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING"
        )
        # The latest snapshot (a row whose position is NULL) and the events after it, in
        # one round trip: loading an aggregate is the commonest read of all.
        self._sql_latest = (
            f"WITH snap AS (SELECT originator_version, topic, state FROM {s}.{SNAPSHOTS_TABLE} "
            "WHERE originator_id = $1 ORDER BY originator_version DESC LIMIT 1) "
            "SELECT * FROM (SELECT NULL::bigint, $1::text, originator_version, topic, state, "
            "NULL::bytea, NULL::text, NULL::bytea, NULL::timestamptz FROM snap "
            f"UNION ALL SELECT {_COLUMNS} FROM {s}.{t} WHERE originator_id = $1 "
            "AND originator_version > coalesce((SELECT originator_version FROM snap), 0)) "
            "AS latest ORDER BY 3"  # by version: the snapshot's is below every event's
        )
        self._sql_get_snapshot = (
            f"SELECT originator_version, topic, state FROM {s}.{SNAPSHOTS_TABLE} "
            "WHERE originator_id = $1 AND originator_version <= $2 "
            "ORDER BY originator_version DESC LIMIT 1"
        )

    @classmethod
    async def open(
        cls, dsn: str, schema: str, *, min_size: int = 2, max_size: int = 10, **kwargs: Any
    ) -> PostgresEventStore:
        pool = await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, reset=_nothing_to_reset, connect=connect
        )
        assert pool is not None
        async with pool.acquire() as conn:
            await ensure_schema(conn, schema)
        return cls(pool, schema, **kwargs)

    async def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close within ``timeout``: past it the pool's connections are terminated, so a
        process going down never waits on a database that stopped answering."""
        try:
            async with asyncio.timeout(timeout):
                await self._committer.close()
                await self._notifier.close()
                await ChannelWatch.close_all(self.pool)
                await self.pool.close()
        except TimeoutError:
            log.warning("store: not closed within %.0f s; connections terminated", timeout)
            self.pool.terminate()

    # -- writing ---------------------------------------------------------------------

    async def append(self, request: AppendRequest) -> AppendResult:
        """Append one command's events atomically, batched with concurrent appends.

        Raises ``ConcurrencyConflict`` when an event's version does not follow the
        stream's current version, and ``IdempotencyKeyReused`` when the command id
        was used for a different command; a repeat of the same command returns the
        first result with ``replayed=True`` and writes nothing.
        """
        return await self._committer.submit(request)

    async def find_command(self, command_id: str) -> CommandRecord | None:
        async with self.pool.acquire() as conn:
            found = await self._writer.find_commands(conn, [command_id])
        return found.get(command_id)

    async def write_snapshot(
        self, originator_id: str, version: int, topic: str, state: bytes
    ) -> None:
        await self.pool.execute(self._sql_put_snapshot, originator_id, version, topic, state)

    async def read_snapshot(
        self, originator_id: str, *, at_most: int = 2**62
    ) -> tuple[int, str, bytes] | None:
        row = await self.pool.fetchrow(self._sql_get_snapshot, originator_id, at_most)
        return None if row is None else (row[0], row[1], row[2])

    async def read_latest(
        self, originator_id: str
    ) -> tuple[tuple[int, str, bytes] | None, list[RecordedEvent]]:
        """The latest snapshot (version, topic, state), if any, and the events after it."""
        rows = await self.pool.fetch(self._sql_latest, originator_id)
        if rows and rows[0][0] is None:
            first = rows[0]
            return (first[2], first[3], first[4]), [_recorded(r) for r in rows[1:]]
        return None, [_recorded(r) for r in rows]

    # -- reading ---------------------------------------------------------------------

    async def read_stream(
        self, originator_id: str, *, after_version: int = 0, to_version: int = 2**62
    ) -> list[RecordedEvent]:
        rows = await self.pool.fetch(self._sql_stream, originator_id, after_version, to_version)
        return [_recorded(r) for r in rows]

    async def read_all(
        self,
        *,
        after: int = 0,
        limit: int = 1000,
        until: int = 2**62,
        tenant_id: str | None = None,
        headers_only: bool = False,
    ) -> list[RecordedEvent]:
        """Events with ``after < position <= until`` in position order.

        Positions are commit-ordered (writers hold the table lock until commit), so
        a reader that resumes after the last position it saw never skips an event.
        ``headers_only`` leaves out state, metadata and hash (empty) for readers that need
        only who, what and when: it reads a fraction of the bytes.
        """
        if headers_only and tenant_id is None:
            rows = await self.pool.fetch(self._sql_headers, after, limit, until)
        elif tenant_id is None:
            rows = await self.pool.fetch(self._sql_all, after, limit, until)
        else:
            rows = await self.pool.fetch(self._sql_all_tenant, after, limit, until, tenant_id)
        return [_recorded(r) for r in rows]

    async def last_position(self) -> int:
        value = await self.pool.fetchval(self._sql_last)
        return int(value)

    async def position_of(self, originator_id: str) -> int:
        """The position of the stream's last event (0 for a stream with none): where a
        reader must have got to for everything written to it to be in what it reads."""
        value = await self.pool.fetchval(self._sql_position_of, originator_id)
        return 0 if value is None else int(value)

    @contextlib.asynccontextmanager
    async def appended(self) -> AsyncIterator[asyncio.Event]:
        """An event set whenever anything is appended (by any process) while inside."""
        async with self._notifier.listen() as wake:
            yield wake

    async def subscribe(
        self, *, after: int = 0, batch_size: int = 1000, idle_poll: float = 1.0
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Batches of events after ``after``: catch up, then follow live appends.

        Live appends are signalled by NOTIFY; the poll after ``idle_poll`` seconds
        covers a notification lost with a dropped connection.
        """
        async with self.appended() as wake:
            position = after
            while True:
                wake.clear()
                batch = await self.read_all(after=position, limit=batch_size)
                if batch:
                    position = batch[-1].position
                    yield batch
                    if len(batch) == batch_size:
                        continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=idle_poll)


async def _nothing_to_reset(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's per-release ``RESET ALL`` round trip: we set no session state.

    asyncpg still rolls back an open transaction and drops listeners on release; the one
    session-level lock we take (the relay's) is released explicitly.
    """
