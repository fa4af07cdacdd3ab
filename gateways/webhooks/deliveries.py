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

import asyncpg
import msgspec

from gateways.eventstore.schema import checked_schema
from gateways.webhooks.records import (
    CURSOR_COLUMNS,
    FAILED,
    RETRYING,
    SUCCEEDED,
    Cursor,
    Delivery,
    RedeliveryRequest,
    Target,
    cursor_of,
)
from gateways.webhooks.sender import Attempt
from projections.webhooks.registry import WebhookRegistry


class Redelivery(msgspec.Struct, frozen=True, kw_only=True):
    """How far a manual redelivery has got: its delivery, once it was first attempted."""

    delivery_id: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    """When a ``retrying`` one is due again."""


class PendingRedelivery(msgspec.Struct, frozen=True, kw_only=True):
    request: RedeliveryRequest
    delivery: Redelivery | None
    """None until its first attempt; then ``retrying``."""


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
                updated_at timestamptz NOT NULL DEFAULT now(),
                failing_since timestamptz
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
                request_position bigint UNIQUE,
                next_attempt_at timestamptz
            );
            DO $$ BEGIN
                -- Logs made before redeliveries were retried: a lock only when it is missing.
                IF NOT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = '{self.deliveries}'::regclass
                        AND attname = 'next_attempt_at' AND NOT attisdropped) THEN
                    ALTER TABLE {self.deliveries} ADD COLUMN next_attempt_at timestamptz;
                END IF;
            END $$;
            DO $$ BEGIN
                -- Cursors made before webhooks were paused for failing hours.
                IF NOT EXISTS (SELECT 1 FROM pg_attribute
                        WHERE attrelid = '{self.cursors}'::regclass
                        AND attname = 'failing_since' AND NOT attisdropped) THEN
                    ALTER TABLE {self.cursors} ADD COLUMN failing_since timestamptz;
                END IF;
            END $$;
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
            f"{', '.join('c.' + c for c in CURSOR_COLUMNS.split(', '))} "
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
                cursor=cursor_of(row, 12),
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
                    failures = 0, failing_since = NULL, next_attempt_at = now(),
                    updated_at = now()
                WHERE webhook_id = $1 AND (replay_seq < $2 OR resume_seq < $4)
                RETURNING {CURSOR_COLUMNS}""",
                target.webhook_id,
                target.replay_seq,
                target.replay_after,
                target.resume_seq,
            )
            if row is None:
                row = await conn.fetchrow(
                    f"SELECT {CURSOR_COLUMNS} FROM {self.cursors} WHERE webhook_id = $1",
                    target.webhook_id,
                )
        return cursor_of(row)

    async def cursor(self, pool: asyncpg.Pool, webhook_id: str) -> Cursor | None:
        row = await pool.fetchrow(
            f"SELECT {CURSOR_COLUMNS} FROM {self.cursors} WHERE webhook_id = $1", webhook_id
        )
        return None if row is None else cursor_of(row)

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
                    failing_since = CASE WHEN $4 THEN NULL
                        ELSE coalesce(c.failing_since, now()) END,
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
        next_attempt_at: datetime | None = None,
    ) -> None:
        await conn.execute(
            f"""WITH d AS (
                INSERT INTO {self.deliveries} AS d (delivery_id, webhook_id, tenant_id,
                    event_id, position, event_type, resource_id, status, attempts,
                    last_status_code, last_error, redelivery_of, request_position,
                    next_attempt_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9, $10, $11, $12, $14)
                ON CONFLICT (delivery_id) DO UPDATE SET attempts = d.attempts + 1,
                    status = excluded.status, last_attempt_at = now(),
                    last_status_code = excluded.last_status_code,
                    last_error = excluded.last_error,
                    next_attempt_at = excluded.next_attempt_at
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
            next_attempt_at,
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

    async def pending_redeliveries(self, pool: asyncpg.Pool) -> list[PendingRedelivery]:
        """Requests not yet attempted, and redeliveries waiting to be tried again."""
        rows = await pool.fetch(
            f"SELECT q.position, q.webhook_id, q.delivery_id, q.event_position, "
            f"d.delivery_id, d.status, d.attempts, d.next_attempt_at "
            f"FROM {self.registry.requests} q JOIN {self.registry.table} r USING (webhook_id) "
            f"LEFT JOIN {self.deliveries} d ON d.request_position = q.position "
            "WHERE (d.delivery_id IS NULL OR d.status = $1) AND r.status <> 'deleted' "
            # Those not yet due last: a crowd of them must not hide new requests.
            "ORDER BY d.next_attempt_at NULLS FIRST, q.position LIMIT 100",
            RETRYING,
        )
        return [
            PendingRedelivery(
                request=RedeliveryRequest(
                    position=row[0], webhook_id=row[1], delivery_id=row[2], event_position=row[3]
                ),
                delivery=None if row[4] is None else _redelivery(row, 4),
            )
            for row in rows
        ]

    async def redelivery(self, pool: asyncpg.Pool, request_position: int) -> Redelivery | None:
        """The delivery made for a redelivery request, as committed now (None: not yet)."""
        row = await pool.fetchrow(
            f"SELECT delivery_id, status, attempts, next_attempt_at FROM {self.deliveries} "
            "WHERE request_position = $1",
            request_position,
        )
        return None if row is None else _redelivery(row)

    async def record_redelivery(
        self,
        pool: asyncpg.Pool,
        request: RedeliveryRequest,
        delivery: Delivery,
        attempt: Attempt,
        *,
        expected: Redelivery | None,
        final: bool,
        next_attempt_at: datetime | None = None,
    ) -> bool:
        """Log one attempt of a manual redelivery; False (and nothing logged) when it is not
        the attempt that was due: the request's delivery is no longer as ``expected``.

        A failed attempt leaves it ``retrying`` until ``next_attempt_at``, unless ``final``.
        """
        async with pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT delivery_id, status, attempts, next_attempt_at FROM {self.deliveries} "
                "WHERE request_position = $1 FOR UPDATE",
                request.position,
            )
            now = None if row is None else _redelivery(row)
            if now != expected or (now is not None and now.delivery_id != delivery.delivery_id):
                return False
            status = SUCCEEDED if attempt.ok else FAILED if final else RETRYING
            due = None if status != RETRYING else next_attempt_at
            await self._log(conn, delivery, status, attempt, request.position, due)
            return True


def _redelivery(row: asyncpg.Record, offset: int = 0) -> Redelivery:
    return Redelivery(
        delivery_id=row[offset],
        status=row[offset + 1],
        attempts=int(row[offset + 2]),
        next_attempt_at=row[offset + 3],
    )
