"""DDL for the event store: the eventsourcing library's own table, plus our columns.

The first five columns of ``scloud_events`` are exactly what the library's
``PostgresApplicationRecorder`` creates for an application named "SCloud" with text
originator ids, so its stock ``Application`` reads what we write. The extra columns
are nullable and the library never names them.
"""

from __future__ import annotations

import re

import asyncpg
from eventsourcing.utils import get_topic

from domain.aggregate import Snapshot

EVENTS_TABLE = "scloud_events"
SNAPSHOTS_TABLE = "scloud_snapshots"
COMMANDS_TABLE = "scloud_commands"
SNAPSHOT_TOPIC = get_topic(Snapshot)
"""The topic of every snapshot row: the library's form, an event of our ``Snapshot`` class
(whose state holds the aggregate's topic and state), so a stock reader can load it."""

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")


def checked_schema(schema: str) -> str:
    """Schema names become identifiers in SQL text, so only plain names pass."""
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


def notify_channel(schema: str) -> str:
    return f"{checked_schema(schema)}_{EVENTS_TABLE}"


def ddl(schema: str) -> str:
    s = checked_schema(schema)
    return f"""
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.{EVENTS_TABLE} (
    originator_id text NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    notification_id bigserial,
    event_id uuid,
    tenant_id text,
    metadata bytea,
    chain_hash bytea,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (originator_id, originator_version)
);
CREATE UNIQUE INDEX IF NOT EXISTS {EVENTS_TABLE}_notification_id_idx
    ON {s}.{EVENTS_TABLE} (notification_id ASC);
CREATE INDEX IF NOT EXISTS {EVENTS_TABLE}_tenant_idx
    ON {s}.{EVENTS_TABLE} (tenant_id, notification_id);
CREATE TABLE IF NOT EXISTS {s}.{SNAPSHOTS_TABLE} (
    originator_id text NOT NULL,
    originator_version bigint NOT NULL,
    topic text,
    state bytea,
    PRIMARY KEY (originator_id, originator_version)
);
-- Snapshots are an optimisation only: those written in the form used before the library's
-- (the aggregate's own topic) are dropped, since a stock reader cannot load them.
DELETE FROM {s}.{SNAPSHOTS_TABLE} WHERE topic IS DISTINCT FROM '{SNAPSHOT_TOPIC}';
CREATE TABLE IF NOT EXISTS {s}.{COMMANDS_TABLE} (
    command_id text PRIMARY KEY,
    fingerprint bytea NOT NULL,
    positions bigint[] NOT NULL,
    result bytea NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
-- One call appends a whole batch, so a batch costs one round trip and one fsync.
-- The caller computes positions and hash links from the head it last saw; if another
-- writer moved the head, nothing is written and the caller recomputes from the new head.
CREATE OR REPLACE FUNCTION {s}.scloud_append(
    expect_head bigint,
    e_ids text[], e_versions bigint[], e_topics text[], e_states bytea[],
    e_positions bigint[], e_event_ids uuid[], e_tenants text[], e_metadata bytea[],
    e_hashes bytea[],
    c_ids text[], c_fingerprints bytea[], c_positions text[], c_results bytea[],
    channel text
) RETURNS TABLE (status text, detail text[], head_position bigint, head_hash bytea)
LANGUAGE plpgsql AS $fn$
DECLARE
    h_pos bigint;
    h_hash bytea;
    known text[];
    inserted bigint;
    missing text[];
BEGIN
    -- EXCLUSIVE blocks other writers (ours and the library's) but not readers, and is
    -- held to commit: a position becomes visible only after every lower one has, so a
    -- reader following positions never skips an event that commits later.
    LOCK TABLE {s}.{EVENTS_TABLE} IN EXCLUSIVE MODE;
    SELECT notification_id, chain_hash INTO h_pos, h_hash
        FROM {s}.{EVENTS_TABLE} ORDER BY notification_id DESC LIMIT 1;
    h_pos := coalesce(h_pos, 0);
    IF h_pos <> expect_head THEN
        RETURN QUERY SELECT 'stale'::text, NULL::text[], h_pos, h_hash;
        RETURN;
    END IF;
    SELECT array_agg(c.command_id) INTO known
        FROM {s}.{COMMANDS_TABLE} c WHERE c.command_id = ANY(c_ids);
    IF known IS NOT NULL THEN
        RETURN QUERY SELECT 'known'::text, known, h_pos, h_hash;
        RETURN;
    END IF;
    WITH ins AS (
        INSERT INTO {s}.{EVENTS_TABLE} (originator_id, originator_version, topic, state,
            notification_id, event_id, tenant_id, metadata, chain_hash)
        SELECT * FROM unnest(e_ids, e_versions, e_topics, e_states, e_positions,
            e_event_ids, e_tenants, e_metadata, e_hashes)
        ON CONFLICT (originator_id, originator_version) DO NOTHING
        RETURNING 1
    ) SELECT count(*) INTO inserted FROM ins;
    IF inserted < coalesce(array_length(e_ids, 1), 0) THEN
        -- Name every event that lost (by its proposed position), then undo the batch.
        SELECT array_agg(u.pos::text) INTO missing
            FROM unnest(e_positions) AS u(pos)
            WHERE NOT EXISTS (SELECT 1 FROM {s}.{EVENTS_TABLE} e
                              WHERE e.notification_id = u.pos);
        RAISE EXCEPTION 'scloud: version conflict'
            USING ERRCODE = 'SC409', DETAIL = array_to_string(missing, ' ');
    END IF;
    -- A version must follow the one before it, at a lower position (in the table or
    -- earlier in this batch): followers must meet a stream's versions in order.
    SELECT array_agg(u.pos::text) INTO missing
        FROM unnest(e_ids, e_versions, e_positions) AS u(oid, ver, pos)
        WHERE u.ver < 1 OR (u.ver > 1 AND NOT EXISTS (
            SELECT 1 FROM {s}.{EVENTS_TABLE} e
            WHERE e.originator_id = u.oid AND e.originator_version = u.ver - 1
              AND e.notification_id < u.pos));
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'scloud: version gap'
            USING ERRCODE = 'SC409', DETAIL = array_to_string(missing, ' ');
    END IF;
    INSERT INTO {s}.{COMMANDS_TABLE} (command_id, fingerprint, positions, result)
        SELECT c.id, c.fp, string_to_array(c.pos, ',')::bigint[], c.res
        FROM unnest(c_ids, c_fingerprints, c_positions, c_results) AS c(id, fp, pos, res);
    IF coalesce(array_length(e_positions, 1), 0) > 0 THEN
        -- Keep the serial ahead of explicit positions for the library's own writers.
        PERFORM setval(pg_get_serial_sequence('{s}.{EVENTS_TABLE}', 'notification_id'),
            greatest(e_positions[array_length(e_positions, 1)],
                     (SELECT last_value FROM {s}.{EVENTS_TABLE}_notification_id_seq)));
        PERFORM pg_notify(channel, e_positions[array_length(e_positions, 1)]::text);
    END IF;
    RETURN QUERY SELECT 'ok'::text, NULL::text[],
        coalesce(e_positions[array_length(e_positions, 1)], h_pos),
        coalesce(e_hashes[array_length(e_hashes, 1)], h_hash);
END
$fn$;
"""


async def ensure_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Create the store's tables if missing; safe to run from many processes at once."""
    # A transaction-scoped advisory lock: concurrent CREATE ... IF NOT EXISTS can
    # still collide on the catalog's unique indexes.
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"ddl:{schema}")
        await conn.execute(ddl(schema))
