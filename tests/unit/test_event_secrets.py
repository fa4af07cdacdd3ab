"""No event type exports a field named like a secret: every one of them, through every path.

The walk imports every module under ``domain/`` and takes every event class of every
aggregate. Each field gets a marker value in the stored state; the test fails when the
marker of a field whose name looks secret (``domain.secrets.looks_secret``) comes out of
an export path, unless the name is on the reviewed list below. A new event with a
``token`` or ``password_hash`` field therefore fails here until its aggregate declares it.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from eventsourcing.utils import get_topic

import domain
from domain.aggregate import Aggregate, Created, Event
from domain.metadata import Actor, CommandContext
from domain.secrets import REDACTED, looks_secret
from gateways.bus import wire
from gateways.bus.redaction import redact
from gateways.eventstore.records import RecordedEvent, encode_metadata
from gateways.eventstore.transcoder import MsgspecTranscoder
from replay.export import Selection, export
from replay.source import MAX_POSITION

NOT_SECRET = frozenset({"password_min_length", "token_ttl_hours"})
"""Reviewed: named like secrets, but login-policy numbers anyone may read."""
_ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic"})


def _subclasses(cls: type[Event]) -> Iterator[type[Event]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def event_types() -> list[type[Event]]:
    """Every concrete event class of every aggregate under ``domain/``."""
    for module in pkgutil.walk_packages(domain.__path__, "domain."):
        importlib.import_module(module.name)
    found = {
        cls
        for cls in _subclasses(Event)
        if "." in cls.__qualname__ and cls.__qualname__.rpartition(".")[2] != "Event"
    }
    return sorted(found, key=get_topic)


EVENTS = event_types()


def fields_of(cls: type[Event]) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.name not in _ENVELOPE]


def recorded(cls: type[Event], position: int = 1) -> RecordedEvent:
    """An event of ``cls`` as stored, each field holding a marker naming it."""
    state = {name: f"MARK-{name}-MARK" for name in fields_of(cls)}
    state["timestamp"] = datetime(2026, 1, 1, tzinfo=UTC)  # type: ignore[assignment]
    context = CommandContext(actor=Actor.system("test"), tenant_id="tnt-test")
    return RecordedEvent(
        position=position,
        originator_id=f"agg-{position}",
        originator_version=1,
        topic=get_topic(cls),
        state=MsgspecTranscoder().encode(state),
        metadata=encode_metadata(context.metadata()),
        tenant_id="tnt-test",
        chain_hash=bytes(32),
        recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def must_hide(cls: type[Event]) -> list[str]:
    return [name for name in fields_of(cls) if looks_secret(name) and name not in NOT_SECRET]


def test_the_walk_finds_every_aggregates_events() -> None:
    names = {cls.__qualname__ for cls in EVENTS}
    assert len(EVENTS) > 100
    assert {"User.Created", "User.PasswordChanged", "Instance.PasswordResetStarted"} <= names
    assert any(issubclass(cls, Created) for cls in EVENTS)


@pytest.mark.parametrize("cls", EVENTS, ids=lambda cls: cls.__qualname__)
def test_no_secret_named_field_leaves_through_subscribers(cls: type[Event]) -> None:
    """NATS (``wire.encode``), webhooks and SSE (``wire.export``) send the same bytes."""
    event = recorded(cls)
    sent = wire.encode(event)
    assert msgspec.json.encode(wire.export(event)) == sent
    leaked = [name for name in must_hide(cls) if f"MARK-{name}-MARK".encode() in sent]
    assert not leaked, f"{cls.__qualname__} exports {leaked}: declare them in secret_fields"
    data = msgspec.json.decode(sent)
    for name in must_hide(cls):
        assert data["data"][name] == REDACTED
    assert set(data.get("redacted", [])) >= set(must_hide(cls))
    for name in set(fields_of(cls)) - set(must_hide(cls)) - _declared(cls):
        assert data["data"][name] == f"MARK-{name}-MARK"  # the rest is sent as stored


def _declared(cls: type[Event]) -> set[str]:
    owner, _, name = cls.__qualname__.rpartition(".")
    aggregate = getattr(importlib.import_module(cls.__module__), owner)
    return set(aggregate.secret_fields.get(name, ()))


async def test_no_secret_named_field_leaves_through_a_replay_export(tmp_path: Path) -> None:
    events = [recorded(cls, position) for position, cls in enumerate(EVENTS, start=1)]
    await export(_Listed(events), Selection(tenant=None), tmp_path / "out")
    written = b"".join((tmp_path / "out" / name).read_bytes() for name in _EXPORT_FILES)
    for cls in EVENTS:
        leaked = [name for name in must_hide(cls) if f"MARK-{name}-MARK".encode() in written]
        assert not leaked, f"{cls.__qualname__} exports {leaked}: declare them in secret_fields"
    with sqlite3.connect(tmp_path / "out" / "events.sqlite") as db:
        listed = dict(db.execute("SELECT notification_id, fields FROM scloud_redacted"))
    for position, cls in enumerate(EVENTS, start=1):
        assert set(listed.get(position, "").split(",")) >= set(must_hide(cls)) - {""}


_EXPORT_FILES = ("events.jsonl", "events.sqlite", "manifest.json")


def test_every_declaration_names_a_real_event_and_field() -> None:
    """A typo in ``secret_fields`` would hide nothing: each name must exist."""
    by_owner: dict[type[Aggregate], dict[str, list[str]]] = {}
    for cls in EVENTS:
        owner, _, name = cls.__qualname__.rpartition(".")
        aggregate = getattr(importlib.import_module(cls.__module__), owner)
        by_owner.setdefault(aggregate, {})[name] = fields_of(cls)
    assert any(aggregate.secret_fields for aggregate in by_owner)
    for aggregate, events in by_owner.items():
        for name, secret in aggregate.secret_fields.items():
            assert name in events, f"{aggregate.__name__}.secret_fields names no event {name}"
            missing = set(secret) - set(events[name])
            assert not missing, f"{aggregate.__name__}.{name} has no field {sorted(missing)}"


def test_an_unknown_topic_hides_every_field_named_like_a_secret() -> None:
    state = msgspec.json.encode({"api_token": "t0k", "note": "kept", "password": None})
    redacted = redact("elsewhere.module:Thing.Happened", state)
    assert msgspec.json.decode(redacted.state) == {
        "api_token": REDACTED,
        "note": "kept",
        "password": None,
    }
    assert redacted.hidden == ("api_token",)
    assert redact("domain.identity.user:User.Created", b"not json").state == b"{}"


class _Listed:
    """A complete in-memory event source (the replay source protocol, nothing more)."""

    description = "listed events"
    complete = True
    redacted: frozenset[int] = frozenset()

    def __init__(self, events: list[RecordedEvent]) -> None:
        self.events = events

    async def head(self) -> int:
        return self.events[-1].position

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
        return [e for e in self.events if after < e.position <= until][:limit]

    async def read_stream(self, originator_id: str) -> list[RecordedEvent]:
        return [e for e in self.events if e.originator_id == originator_id]

    async def read_linked(self, links: object) -> list[RecordedEvent]:
        return []

    async def previous_hashes(self, positions: object) -> dict[int, bytes]:
        return {}

    async def close(self) -> None:
        pass
