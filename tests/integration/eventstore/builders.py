"""Shared by the event store tests: schemas, records to append, a toy aggregate."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal

import asyncpg
from eventsourcing.domain import event as event_method

from domain.aggregate import Aggregate
from domain.metadata import Actor, CommandContext
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, NewEvent

TOPIC = "tests.eventstore:Happened"

OpenStore = Callable[[], Awaitable[PostgresEventStore]]
"""Opens another store on the test's schema (the ``open_store`` fixture)."""


def new_schema_name() -> str:
    return "t_" + secrets.token_hex(8)


async def drop_schema(database_url: str, schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


def stream() -> str:
    """A fresh originator id."""
    return "s-" + uuid.uuid4().hex


def event(
    originator_id: str,
    version: int,
    *,
    topic: str = TOPIC,
    state: bytes | None = None,
    tenant_id: str | None = None,
) -> NewEvent:
    context = CommandContext(actor=Actor.system("tests"), tenant_id=tenant_id)
    body = state if state is not None else f'{{"v":{version}}}'.encode()
    return NewEvent(originator_id, version, topic, body, context.metadata())


def request(
    *events: NewEvent, command_id: str | None = None, fingerprint: bytes = b"", result: bytes = b""
) -> AppendRequest:
    return AppendRequest(
        events=events, command_id=command_id, fingerprint=fingerprint, result=result
    )


class Account(Aggregate):
    """A toy aggregate with a Decimal and a datetime, the values the library tags."""

    id_prefix = "acct"

    @event_method("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = Decimal("0.00")
        self.last_credited: datetime | None = None

    @event_method("Credited")
    def credit(self, amount: Decimal, at: datetime) -> None:
        self.balance += amount
        self.last_credited = at
