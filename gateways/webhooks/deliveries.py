"""The dispatcher's own tables: a cursor per webhook, the delivery log and its attempts.

Every attempt is written in one transaction with the cursor it moves, after checking that
the cursor is still where the attempt started from: a delivery is logged exactly once
and the cursor never moves past an event that was not delivered, even across crashes
and replays. (The request itself is at-least-once: a crash after the receiver answered
but before the commit sends that event again, under the same event id.)
"""

# Table names come from ``checked_schema``; every value travels as a bind parameter.
# ruff: noqa: S608

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from gateways.eventstore.schema import EVENTS_TABLE, checked_schema
from gateways.webhooks.sender import Attempt
from projections.webhooks.registry import WebhookRegistry

SUCCEEDED = "succeeded"
RETRYING = "retrying"
FAILED = "failed"


class Cursor(msgspec.Struct, kw_only=True):
    position: int
    """Every event up to here is delivered or filtered out."""
    replay_seq: int
    resume_seq: int
    failures: int
    next_attempt_at: datetime
    pending_delivery_id: str | None
    """The delivery being retried, for the event at ``pending_position``."""
    pending_position: int | None


class Target(msgspec.Struct, kw_only=True):
    """A webhook as the registry knows it, with the dispatcher's cursor (None: not begun)."""

    webhook_id: str
    tenant_id: str
    url: str
    event_types: list[str]
    status: str
    allow_private: bool
    secret_salt: str
    key_id: str
    created_position: int
    replay_seq: int
    replay_after: int
    resume_seq: int
    cursor: Cursor | None


class Delivery(msgspec.Struct, kw_only=True):
    """One event sent to one webhook; its attempts share the delivery id."""

    delivery_id: str
    webhook_id: str
    tenant_id: str
    event_id: str
    position: int
    event_type: str
    resource_id: str
    redelivery_of: str | None = None


class RedeliveryRequest(msgspec.Struct, kw_only=True):
    position: int
    """Of the ``RedeliveryRequested`` event: the request's identity."""
    webhook_id: str
    delivery_id: str
    """The delivery to send again."""
    event_position: int


_DELIVERY_COLUMNS = (
    "delivery_id, webhook_id, event_id, position, event_type, resource_id, status, attempts, "
    "created_at, last_attempt_at, last_status_code, last_error, redelivery_of"
)
_CURSOR_COLUMNS = (
    "position, replay_seq, resume_seq, failures, next_attempt_at, pending_delivery_id, "
    "pending_position"
)


def _cursor(row: Any, offset: int = 0) -> Cursor | None:
    if row[offset] is None:
        return None
    fields = ("position", "replay_seq", "resume_seq", "failures", "next_attempt_at")
    values = {name: row[offset + i] for i, name in enumerate(fields)}
    return Cursor(**values, pending_delivery_id=row[offset + 5], pending_position=row[offset + 6])


class DeliveryLog:
    def __init__(self, schema: str) -> None:
        s = self.schema = checked_schema(schema)
        self.registry = WebhookRegistry(s)
        self.cursors = f"{s}.webhook_cursors"
        self.deliveries = f"{s}.webhook_deliveries"
        self.attempts = f"{s}.webhook_attempts"

    def ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.cursors} (
                webhook_id text PRIMARY KEY,
                position bigint NOT NULL,
                replay_seq integer NOT NULL DEFAULT 0,
                resume_seq integer NOT NULL DEFAULT 0,
                failures integer NOT NULL DEFAULT 0,
                next_attempt_at timestamptz NOT NULL DEFAULT now(),
                pending_delivery_id text,
                pending_position bigint,
                updated_at timestamptz NOT NULL DEFAULT now()
            );
            CREATE TABLE IF NOT EXISTS {self.deliveries} (
                delivery_id text PRIMARY KEY,
                webhook_id text NOT NULL,
                tenant_id text NOT NULL,
                event_id text NOT NULL,
                position bigint NOT NULL,
                event_type text NOT NULL,
                resource_id text NOT NULL,
                status text NOT NULL,
                attempts integer NOT NULL,
                created_at timestamptz NOT NULL DEFAULT now(),
                last_attempt_at timestamptz NOT NULL DEFAULT now(),
                last_status_code integer,
                last_error text,
                redelivery_of text,
                request_position bigint UNIQUE
            );
            CREATE INDEX IF NOT EXISTS webhook_deliveries_by_webhook
                ON {self.deliveries} (webhook_id, delivery_id);
            CREATE TABLE IF NOT EXISTS {self.attempts} (
                delivery_id text NOT NULL,
                attempt integer NOT NULL,
                attempted_at timestamptz NOT NULL DEFAULT now(),
                status_code integer,
                latency_ms double precision NOT NULL,
                error text,
                PRIMARY KEY (delivery_id, attempt)
            );
        """

    async def ensure(self, pool: asyncpg.Pool) -> None:
        """Create the registry's and the log's tables if this schema has none yet."""
        async with pool.acquire() as conn, conn.transaction():
            # The lock projection runners take for their DDL in this schema: concurrent
            # CREATE TABLE IF NOT EXISTS of one table can fail in PostgreSQL.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"ddl:{self.schema}")
            await conn.execute(self.registry.ddl())
            await conn.execute(self.ddl())

    # -- the dispatcher's side ---------------------------------------------------------

    async def targets(self, conn: asyncpg.Connection | asyncpg.Pool) -> list[Target]:
        r = self.registry.table
        rows = await conn.fetch(
            f"SELECT r.webhook_id, tenant_id, url, event_types, status, allow_private, "
            f"secret_salt, key_id, created_position, r.replay_seq, replay_after, r.resume_seq, "
            f"{', '.join('c.' + c for c in _CURSOR_COLUMNS.split(', '))} "
            f"FROM {r} r LEFT JOIN {self.cursors} c USING (webhook_id) "
            "WHERE status <> 'deleted'"
        )
        return [
            Target(
                webhook_id=row[0],
                tenant_id=row[1],
                url=row[2],
                event_types=list(row[3]),
                status=row[4],
                allow_private=row[5],
                secret_salt=row[6],
                key_id=row[7],
                created_position=row[8],
                replay_seq=row[9],
                replay_after=row[10],
                resume_seq=row[11],
                cursor=_cursor(row, 12),
            )
            for row in rows
        ]

    async def sync(self, pool: asyncpg.Pool, target: Target) -> Cursor | None:
        """Begin the cursor, or apply a replay or resume requested since; the cursor after."""
        cursor = target.cursor
        if cursor is not None and (
            cursor.replay_seq >= target.replay_seq and cursor.resume_seq >= target.resume_seq
        ):
            return cursor
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"INSERT INTO {self.cursors} (webhook_id, position) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                target.webhook_id,
                target.created_position,
            )
            # A replay moves the cursor and forgets the pending delivery; a resume only
            # forgives the failures, so the dead-lettered event is tried again.
            before = await conn.fetchrow(
                f"SELECT replay_seq, pending_delivery_id FROM {self.cursors} "
                "WHERE webhook_id = $1 FOR UPDATE",
                target.webhook_id,
            )
            if before[0] < target.replay_seq and before[1] is not None:
                await self._abandon(conn, before[1])
            row = await conn.fetchrow(
                f"""UPDATE {self.cursors} SET
                    position = CASE WHEN replay_seq < $2 THEN $3 ELSE position END,
                    pending_delivery_id = CASE WHEN replay_seq < $2 THEN NULL
                        ELSE pending_delivery_id END,
                    pending_position = CASE WHEN replay_seq < $2 THEN NULL
                        ELSE pending_position END,
                    replay_seq = greatest(replay_seq, $2), resume_seq = greatest(resume_seq, $4),
                    failures = 0, next_attempt_at = now(), updated_at = now()
                WHERE webhook_id = $1 AND (replay_seq < $2 OR resume_seq < $4)
                RETURNING {_CURSOR_COLUMNS}""",
                target.webhook_id,
                target.replay_seq,
                target.replay_after,
                target.resume_seq,
            )
            if row is None:
                row = await conn.fetchrow(
                    f"SELECT {_CURSOR_COLUMNS} FROM {self.cursors} WHERE webhook_id = $1",
                    target.webhook_id,
                )
        return _cursor(row)

    async def record(
        self,
        pool: asyncpg.Pool,
        delivery: Delivery,
        attempt: Attempt,
        *,
        expected: tuple[int, int],
        next_attempt_at: datetime,
    ) -> int | None:
        """Log an attempt and move the cursor with it; consecutive failures after it.

        None when the cursor is no longer at ``expected`` (position, replay_seq): someone
        replayed meanwhile, and this attempt is not logged.
        """
        async with pool.acquire() as conn, conn.transaction():
            # Not waiting for the flush is safe here: a commit lost with a crash of the
            # database takes its cursor move with it, and the event is simply sent again.
            await conn.execute("SET LOCAL synchronous_commit = off")
            # Compare-and-set: the cursor moves only from where the attempt started.
            row = await conn.fetchrow(
                f"""UPDATE {self.cursors} c SET
                    position = CASE WHEN $4 THEN $5 ELSE c.position END,
                    failures = CASE WHEN $4 THEN 0 ELSE c.failures + 1 END,
                    pending_delivery_id = CASE WHEN $4 THEN NULL ELSE $7 END,
                    pending_position = CASE WHEN $4 THEN NULL ELSE $5 END,
                    next_attempt_at = $6, updated_at = now()
                FROM (SELECT webhook_id, pending_delivery_id FROM {self.cursors}
                      WHERE webhook_id = $1 FOR UPDATE) before
                WHERE c.webhook_id = before.webhook_id AND c.position = $2
                    AND c.replay_seq = $3
                RETURNING c.failures, before.pending_delivery_id""",
                delivery.webhook_id,
                expected[0],
                expected[1],
                attempt.ok,
                delivery.position,
                datetime.now(UTC) if attempt.ok else next_attempt_at,
                delivery.delivery_id,
            )
            if row is None:
                return None
            failures, previous = int(row[0]), row[1]
            if previous is not None and previous != delivery.delivery_id:
                # The filters changed since that delivery failed: its event is no longer due.
                await self._abandon(conn, previous)
            await self._log(conn, delivery, SUCCEEDED if attempt.ok else RETRYING, attempt)
            return failures

    async def _abandon(self, conn: asyncpg.Connection | asyncpg.Pool, delivery_id: str) -> None:
        await conn.execute(
            f"UPDATE {self.deliveries} SET status = $2 WHERE delivery_id = $1 AND status = $3",
            delivery_id,
            FAILED,
            RETRYING,
        )

    async def _log(
        self,
        conn: asyncpg.Connection,
        delivery: Delivery,
        status: str,
        attempt: Attempt,
        request_position: int | None = None,
    ) -> None:
        await conn.execute(
            f"""WITH d AS (
                INSERT INTO {self.deliveries} AS d (delivery_id, webhook_id, tenant_id,
                    event_id, position, event_type, resource_id, status, attempts,
                    last_status_code, last_error, redelivery_of, request_position)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $12)
                ON CONFLICT (delivery_id) DO UPDATE SET attempts = d.attempts + 1,
                    status = excluded.status, last_attempt_at = now(),
                    last_status_code = excluded.last_status_code,
                    last_error = excluded.last_error
                RETURNING delivery_id, attempts)
            INSERT INTO {self.attempts} (delivery_id, attempt, status_code, latency_ms, error)
            SELECT delivery_id, attempts, $9, $13, $10 FROM d""",
            delivery.delivery_id,
            delivery.webhook_id,
            delivery.tenant_id,
            delivery.event_id,
            delivery.position,
            delivery.event_type,
            delivery.resource_id,
            status,
            attempt.status_code,
            attempt.error,
            delivery.redelivery_of,
            request_position,
            attempt.latency_ms,
        )

    async def give_up(self, pool: asyncpg.Pool, delivery_id: str) -> None:
        """Mark a delivery failed when its webhook is dead-lettered (a resume retries it)."""
        await self._abandon(pool, delivery_id)

    async def last_error(self, pool: asyncpg.Pool, delivery_id: str) -> str | None:
        error = await pool.fetchval(
            f"SELECT last_error FROM {self.deliveries} WHERE delivery_id = $1", delivery_id
        )
        return None if error is None else str(error)

    async def advance(
        self, pool: asyncpg.Pool, webhook_id: str, expected: tuple[int, int], position: int
    ) -> bool:
        """Move past events the webhook's filters leave out; False if the cursor moved."""
        status = await pool.execute(
            f"UPDATE {self.cursors} SET position = $4, updated_at = now() "
            "WHERE webhook_id = $1 AND position = $2 AND replay_seq = $3",
            webhook_id,
            expected[0],
            expected[1],
            position,
        )
        return bool(status == "UPDATE 1")

    async def pending_redeliveries(self, pool: asyncpg.Pool) -> list[RedeliveryRequest]:
        rows = await pool.fetch(
            f"SELECT q.position, q.webhook_id, q.delivery_id, q.event_position "
            f"FROM {self.registry.requests} q JOIN {self.registry.table} r USING (webhook_id) "
            f"LEFT JOIN {self.deliveries} d ON d.request_position = q.position "
            "WHERE d.delivery_id IS NULL AND r.status <> 'deleted' ORDER BY q.position LIMIT 100"
        )
        return [RedeliveryRequest(**dict(row.items())) for row in rows]

    async def record_redelivery(
        self, pool: asyncpg.Pool, request: RedeliveryRequest, delivery: Delivery, attempt: Attempt
    ) -> None:
        """A manual redelivery's one attempt; a second one for the same request is dropped."""
        async with pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(
                f"SELECT 1 FROM {self.deliveries} WHERE request_position = $1", request.position
            ):
                return
            status = SUCCEEDED if attempt.ok else FAILED
            await self._log(conn, delivery, status, attempt, request.position)

    # -- the API's and the operators' side ---------------------------------------------

    async def backlog(self, pool: asyncpg.Pool) -> dict[str, int]:
        """Per webhook not deleted: its tenant's events it has not yet passed (for /metrics)."""
        rows = await pool.fetch(
            f"SELECT c.webhook_id, (SELECT count(*) FROM {self.schema}.{EVENTS_TABLE} e "
            "WHERE e.tenant_id = r.tenant_id AND e.notification_id > c.position) "
            f"FROM {self.cursors} c JOIN {self.registry.table} r USING (webhook_id) "
            "WHERE r.status <> 'deleted'"
        )
        return {row[0]: int(row[1]) for row in rows}

    async def cursor(self, pool: asyncpg.Pool, webhook_id: str) -> Cursor | None:
        row = await pool.fetchrow(
            f"SELECT {_CURSOR_COLUMNS} FROM {self.cursors} WHERE webhook_id = $1", webhook_id
        )
        return None if row is None else _cursor(row)

    async def page(
        self,
        pool: asyncpg.Pool,
        webhook_id: str,
        *,
        limit: int,
        before: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first; ``before`` is the last delivery id of the previous page."""
        rows = await pool.fetch(
            f"SELECT {_DELIVERY_COLUMNS} FROM {self.deliveries} WHERE webhook_id = $1 "
            "AND ($2::text IS NULL OR delivery_id < $2) AND ($3::text IS NULL OR status = $3) "
            "ORDER BY delivery_id DESC LIMIT $4",
            webhook_id,
            before,
            status,
            limit,
        )
        return [_view(row) for row in rows]

    async def one(
        self, pool: asyncpg.Pool, webhook_id: str, delivery_id: str
    ) -> dict[str, Any] | None:
        """A delivery with its attempts, oldest first."""
        row = await pool.fetchrow(
            f"SELECT {_DELIVERY_COLUMNS} FROM {self.deliveries} "
            "WHERE webhook_id = $1 AND delivery_id = $2",
            webhook_id,
            delivery_id,
        )
        if row is None:
            return None
        attempts = await pool.fetch(
            f"SELECT attempt, attempted_at, status_code, latency_ms, error FROM {self.attempts} "
            "WHERE delivery_id = $1 ORDER BY attempt",
            delivery_id,
        )
        view = _view(row)
        view["attempt_log"] = [
            {
                "attempt": a[0],
                "attempted_at": a[1].isoformat(),
                "status_code": a[2],
                "latency_ms": a[3],
                "error": a[4],
            }
            for a in attempts
        ]
        return view


def _view(row: Any) -> dict[str, Any]:
    view = dict(row.items())
    view["id"] = view.pop("delivery_id")
    for key in ("created_at", "last_attempt_at"):
        view[key] = view[key].isoformat()
    return view
