"""Metered usage: each on-demand resource's billed quantities as intervals [start, end).

Each instance is replayed here from its own events (the same code that decides replays),
and after every event the quantities its state bills (``instance_usage``; nothing while a
prepaid subscription covers it) are compared with those before: where one changed, the
open interval ends at the event's time and a new one starts. Intervals carry how far
they were rated, from the account's postings, so the settlement reads only what is still
to be charged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg
import msgspec
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import Mapper, StoredEvent

from domain.aggregate import Snapshot
from domain.billing.dimensions import instance_usage
from domain.billing.metering import changes
from domain.ids import derived_id
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import checked_schema
from gateways.eventstore.transcoder import MsgspecTranscoder

_INSTANCE = "domain.compute.instance:Instance."
_POSTED = "domain.billing.account:BillingAccount.ChargesPosted"
_SUBSCRIPTION = "domain.billing.subscription:Subscription."
_ENDS_COVER = (f"{_SUBSCRIPTION}Cancelled",)


def _resource_of(event: RecordedEvent) -> str:
    """An instance's id; for a subscription's event, the instance it covers (same body)."""
    if event.topic.startswith(_SUBSCRIPTION):
        return derived_id("i", event.originator_id)
    return event.originator_id


def _covers(topic: str, was: bool) -> bool:
    if topic == f"{_SUBSCRIPTION}Created":
        return True
    if topic in _ENDS_COVER:
        return False
    return was  # renewals and recovery stages: still paid in advance (a purge bills nothing)


_state = msgspec.json.Decoder(dict[str, Any]).decode


def _billed_status(instance: Any) -> str:
    """A stopped guest being moved (a cold migration) bills as stopped: its disk only."""
    move = getattr(instance, "migration", None) or {}
    if instance.status == "migrating" and move.get("resume") == "stopped":
        return "stopped"
    return str(instance.status)


def billed(instance: Any, covered: bool = False) -> dict[str, Decimal]:
    """What an instance's state bills on demand (one a subscription covers: nothing)."""
    if covered or getattr(instance, "charge_mode", "on_demand") != "on_demand":
        return {}
    return instance_usage(
        _billed_status(instance),
        instance.vcpus,
        instance.memory_mb,
        instance.disk_gb,
        int(getattr(instance, "gpu_count", 0) or 0),
        getattr(instance, "flavor_id", None),
    )


class MeteredUsage:
    name = "billing_usage"

    def __init__(self, schema: str) -> None:
        self.schema = checked_schema(schema)
        self.meters = f"{self.schema}.billing_meters"
        self.table = f"{self.schema}.billing_usage"
        self._transcoder = MsgspecTranscoder()
        self._mapper: Mapper[str] = Mapper(transcoder=self._transcoder)

    def ddl(self) -> str:
        return f"""
            CREATE TABLE IF NOT EXISTS {self.meters} (
                resource_id text PRIMARY KEY,
                topic text NOT NULL,
                version bigint NOT NULL,
                state bytea NOT NULL,
                covered boolean NOT NULL DEFAULT false
            );
            CREATE TABLE IF NOT EXISTS {self.table} (
                resource_id text NOT NULL,
                dimension text NOT NULL,
                started_at timestamptz NOT NULL,
                ended_at timestamptz,
                quantity text NOT NULL,
                tenant_id text NOT NULL,
                region_id text NOT NULL,
                project_id text,
                rated_until timestamptz,
                flavor_id text,
                position bigint NOT NULL,
                PRIMARY KEY (resource_id, dimension, started_at)
            );
            CREATE INDEX IF NOT EXISTS billing_usage_unrated ON {self.table} (tenant_id)
                WHERE ended_at IS NULL OR rated_until IS NULL OR rated_until < ended_at;
        """

    def tables(self) -> Sequence[str]:
        return (self.table, self.meters)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        metered = [e for e in events if e.topic.startswith((_INSTANCE, _SUBSCRIPTION))]
        if metered:
            await self._meter(conn, metered)
        for event in events:
            if event.topic == _POSTED:
                await self._rated(conn, _state(event.state)["charges"])

    async def _meter(self, conn: asyncpg.Connection, events: Sequence[RecordedEvent]) -> None:
        ids = list(dict.fromkeys(_resource_of(e) for e in events))
        current: dict[str, BaseAggregate[str]] = {}
        covered: dict[str, bool] = {}
        for row in await conn.fetch(
            f"SELECT resource_id, topic, version, state, covered FROM {self.meters} "
            "WHERE resource_id = ANY($1::text[])",
            ids,
        ):
            current[row[0]] = Snapshot(
                originator_id=row[0],
                originator_version=row[2],
                timestamp=Snapshot.create_timestamp(),
                topic=row[1],
                state=self._transcoder.decode(row[3]),
            ).mutate(None)
            covered[row[0]] = row[4]
        fold = _Intervals(
            await conn.fetch(
                f"SELECT resource_id, dimension, started_at FROM {self.table} "
                "WHERE resource_id = ANY($1::text[]) AND ended_at IS NULL",
                ids,
            )
        )
        for event in events:
            resource_id = _resource_of(event)
            domain_event = self._mapper.to_domain_event(
                StoredEvent(event.originator_id, event.originator_version, event.topic, event.state)
            )
            previous = current.get(resource_id)
            was_covered = covered.get(resource_id, False)
            before = billed(previous, was_covered) if previous is not None else {}
            if event.topic.startswith(_INSTANCE):
                aggregate = domain_event.mutate(previous)  # type: ignore[attr-defined]
                current[resource_id] = aggregate
            elif previous is None:
                continue  # a subscription of something this projection does not meter
            else:
                aggregate = previous
                covered[resource_id] = _covers(event.topic, was_covered)
            after = billed(aggregate, covered.get(resource_id, False))
            if after != before:
                at = domain_event.timestamp  # type: ignore[attr-defined]
                fold.cut(aggregate, before, after, at, event.position)
        await fold.write(conn, self.table)
        await conn.executemany(
            f"INSERT INTO {self.meters} (resource_id, topic, version, state, covered) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (resource_id) DO UPDATE SET "
            "topic = excluded.topic, version = excluded.version, state = excluded.state, "
            "covered = excluded.covered",
            [
                (
                    resource_id,
                    (snapshot := Snapshot.take(aggregate)).topic,
                    aggregate.version,
                    self._transcoder.encode(snapshot.state),
                    covered.get(resource_id, False),
                )
                for resource_id, aggregate in current.items()
            ],
        )

    async def _rated(self, conn: asyncpg.Connection, charges: list[dict[str, Any]]) -> None:
        await conn.executemany(
            f"UPDATE {self.table} SET rated_until = greatest(rated_until, $4) "
            "WHERE resource_id = $1 AND dimension = $2 AND started_at <= $3 "
            "AND (ended_at IS NULL OR ended_at > $3)",
            [
                (
                    c["resource_id"],
                    c["dimension"],
                    datetime.fromisoformat(c["start"]),
                    datetime.fromisoformat(c["end"]),
                )
                for c in charges
            ],
        )


Key = tuple[str, str, datetime]


class _Intervals:
    """One batch's cuts, folded in memory and written in a few statements.

    The same rules as one event at a time: a changed dimension's open interval ends at
    the event; one that ends where it began is dropped; a new quantity opens another.
    """

    def __init__(self, open_rows: Sequence[Any]) -> None:
        self.open: dict[tuple[str, str], datetime] = {(r[0], r[1]): r[2] for r in open_rows}
        self.new: dict[Key, list[Any]] = {}
        self.ended: dict[Key, datetime] = {}
        self.deleted: set[Key] = set()

    def cut(
        self,
        instance: Any,
        before: dict[str, Decimal],
        after: dict[str, Decimal],
        at: datetime,
        position: int,
    ) -> None:
        closed, opened = changes(before, after)
        for dimension in closed:
            started = self.open.pop((instance.id, dimension), None)
            if started is None:
                continue
            key = (instance.id, dimension, started)
            if started == at:
                if self.new.pop(key, None) is None:
                    self.deleted.add(key)
                self.ended.pop(key, None)
            elif key in self.new:
                self.new[key][3] = at
            else:
                self.ended[key] = at
        for dimension, quantity in opened.items():
            key = (instance.id, dimension, at)
            self.new[key] = [
                instance.id,
                dimension,
                at,
                None,
                str(quantity),
                instance.tenant_id,
                instance.region_id,
                instance.project_id,
                getattr(instance, "flavor_id", None),
                position,
            ]
            self.open[(instance.id, dimension)] = at

    async def write(self, conn: asyncpg.Connection, table: str) -> None:
        if self.deleted:
            await conn.executemany(
                f"DELETE FROM {table} WHERE resource_id = $1 AND dimension = $2 "
                "AND started_at = $3",
                sorted(self.deleted),
            )
        if self.ended:
            await conn.executemany(
                f"UPDATE {table} SET ended_at = $4 WHERE resource_id = $1 AND dimension = $2 "
                "AND started_at = $3",
                [(*key, end) for key, end in sorted(self.ended.items())],
            )
        if self.new:
            columns = [list(c) for c in zip(*self.new.values(), strict=True)]
            await conn.execute(
                f"INSERT INTO {table} (resource_id, dimension, started_at, ended_at, quantity, "
                "tenant_id, region_id, project_id, flavor_id, position) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], "
                "$4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], "
                "$10::bigint[]) "
                "ON CONFLICT (resource_id, dimension, started_at) DO UPDATE SET "
                "ended_at = excluded.ended_at, quantity = excluded.quantity, "
                "position = excluded.position, flavor_id = excluded.flavor_id, rated_until = NULL",
                *columns,
            )
