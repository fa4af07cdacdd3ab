"""The relay: each event in JetStream exactly once and in order, across kills and rivals."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.js import JetStreamContext

from domain.identity.user import User
from domain.metadata import Actor, CommandContext
from domain.secrets import REDACTED
from gateways.bus import wire
from gateways.bus.relay import EventRelay
from gateways.bus.subjects import event_subject
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository
from tests.integration.history import write_history

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def jetstream(nats_url: str) -> AsyncIterator[tuple[JetStreamContext, str, str]]:
    """A JetStream context and a stream name and subject prefix no other test uses."""
    client = await nats.connect(nats_url)
    suffix = secrets.token_hex(4)
    stream, prefix = f"T_EVENTS_{suffix}", f"t{suffix}.events"
    try:
        yield client.jetstream(), stream, prefix
    finally:
        try:
            await client.jetstream().delete_stream(stream)
        except Exception:  # the test may not have created it
            pass
        await client.close()


async def stream_positions(js: JetStreamContext, stream: str) -> list[int]:
    info = await js.stream_info(stream)
    positions = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        message = await js.get_msg(stream, seq=seq)
        positions.append(wire.decode(message.data).position)
    return positions


async def test_relay_killed_mid_stream_leaves_each_event_once_in_order(
    store: PostgresEventStore,
    database_url: str,
    nats_url: str,
    jetstream: tuple[JetStreamContext, str, str],
) -> None:
    js, stream, prefix = jetstream
    total = await write_history(store, 500)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.bus.relay_child",
        database_url,
        store.schema,
        nats_url,
        stream,
        prefix,
        cwd=ROOT,
    )
    published = 0
    async with asyncio.timeout(60):
        while published < total // 3:
            await asyncio.sleep(0.02)
            try:
                published = (await js.stream_info(stream)).state.messages
            except nats.js.errors.NotFoundError:
                continue
    os.kill(child.pid, signal.SIGKILL)
    await child.wait()
    assert published < total, "the relay finished before it could be killed"

    relay = EventRelay(store, js, stream=stream, prefix=prefix)
    relay.published = await relay.last_published()
    await relay.run_once()

    expected = [e.position for e in await store.read_all(limit=10**6)]
    assert len(expected) == total
    assert await stream_positions(js, stream) == expected


async def test_a_relay_behind_the_stream_adds_no_duplicates(
    store: PostgresEventStore, jetstream: tuple[JetStreamContext, str, str]
) -> None:
    js, stream, prefix = jetstream
    await write_history(store, 60)
    relay = EventRelay(store, js, stream=stream, prefix=prefix)
    await relay.ensure_stream()
    await relay.run_once()
    first = await stream_positions(js, stream)
    relay.published = 0  # as a second relay that never looked at the stream would
    await relay.run_once()
    assert await stream_positions(js, stream) == first


async def test_two_relays_at_once_publish_each_event_once(
    store: PostgresEventStore, jetstream: tuple[JetStreamContext, str, str]
) -> None:
    js, stream, prefix = jetstream
    total = await write_history(store, 200)
    stop = asyncio.Event()
    relays = [EventRelay(store, js, stream=stream, prefix=prefix, idle_poll=0.1) for _ in "ab"]
    tasks = [asyncio.create_task(r.run(stop)) for r in relays]
    try:
        async with asyncio.timeout(30):
            while True:
                try:
                    if (await js.stream_info(stream)).state.messages >= total:
                        break
                except nats.js.errors.NotFoundError:
                    pass
                await asyncio.sleep(0.05)
        await write_history(store, 20, seed=99)
        await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
    expected = [e.position for e in await store.read_all(limit=10**6)]
    assert await stream_positions(js, stream) == expected


async def test_messages_carry_subject_headers_and_payload(
    store: PostgresEventStore, jetstream: tuple[JetStreamContext, str, str]
) -> None:
    js, stream, prefix = jetstream
    await write_history(store, 3)
    relay = EventRelay(store, js, stream=stream, prefix=prefix)
    await relay.ensure_stream()
    await relay.run_once()
    first = (await store.read_all(limit=1))[0]
    message = await js.get_msg(stream, seq=1)
    assert message.subject == event_subject(
        first.tenant_id, first.originator_id, first.topic, prefix
    )
    assert message.subject.startswith(f"{prefix}.{first.tenant_id}.{first.originator_id}.")
    assert message.headers is not None and message.headers["Nats-Msg-Id"] == str(first.position)
    exported = wire.decode(message.data)
    assert exported.resource_id == first.originator_id
    assert exported.metadata == first.envelope()
    assert bytes(exported.data) == first.state


async def test_no_password_hash_reaches_the_stream(
    store: PostgresEventStore, jetstream: tuple[JetStreamContext, str, str]
) -> None:
    """NATS subscribers get the event with its declared secret fields redacted."""
    js, stream, prefix = jetstream
    hashed = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$relay-test-hash"
    user = User(email="a@b.example", password_hash=hashed, roles=["owner"], tenant_id="tnt-r")
    user.change_password(hashed + "-new")
    context = CommandContext(actor=Actor.system("test"), tenant_id="tnt-r")
    await Repository(store).save(context, user)
    relay = EventRelay(store, js, stream=stream, prefix=prefix)
    await relay.ensure_stream()
    await relay.run_once()
    info = await js.stream_info(stream)
    assert info.state.messages == 2
    for seq, name in ((1, "Created"), (2, "PasswordChanged")):
        message = await js.get_msg(stream, seq=seq)
        assert message.data is not None and hashed.encode() not in message.data
        exported = wire.decode(message.data)
        assert exported.type == name and exported.redacted == ("password_hash",)
        data = msgspec.json.decode(exported.data)
        assert data["password_hash"] == REDACTED
    stored = await store.read_stream(user.id)
    assert hashed.encode() in stored[0].state  # the store itself keeps it
