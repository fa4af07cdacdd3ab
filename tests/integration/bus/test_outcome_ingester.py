"""A host outcome whose handling fails is not lost: it comes again until it is handled."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import nats
from nats.js import JetStreamContext

from gateways.bus import hostwire
from gateways.bus.hostwire import Action, HostOutcome, PowerState
from gateways.bus.ingester import OutcomeIngester
from gateways.eventstore.records import ConcurrencyConflict
from hostd.streams import HostBus, ensure_streams


async def test_an_outcome_that_failed_to_be_handled_is_delivered_again(nats_url: str) -> None:
    client = await nats.connect(nats_url)
    js = client.jetstream()
    host = f"hst-{secrets.token_hex(4)}"
    mine = f"i-{secrets.token_hex(6)}"
    attempts: list[str] = []
    handled = asyncio.Event()

    async def handle(outcome: HostOutcome) -> None:
        if outcome.instance_id != mine:
            return  # other tests' outcomes on the shared stream
        attempts.append(outcome.step_id)
        if len(attempts) < 3:
            raise ConcurrencyConflict("lost the race every time", aggregate_id=mine, version=1)
        handled.set()

    async def ensure() -> None:
        await ensure_streams(js, HostBus())

    durable = f"test-ingester-{secrets.token_hex(4)}"
    ingester = OutcomeIngester(js, handle, ensure_streams=ensure, durable=durable)
    stop = asyncio.Event()
    await ensure()
    running = asyncio.create_task(ingester.run(stop))
    try:
        outcome = HostOutcome(
            step_id="stp-once",
            host_id=host,
            instance_id=mine,
            action=Action.ENSURE_RUNNING,
            ok=True,
            state=PowerState.RUNNING,
        )
        await js.publish(hostwire.outcome_subject(host), hostwire.encode(outcome))
        await asyncio.wait_for(handled.wait(), 20)
        assert attempts == ["stp-once"] * 3  # twice refused, then handled: never dropped
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await js.delete_consumer(hostwire.OUTCOMES_STREAM, durable)
        await client.close()


async def _handled_steps(
    js: JetStreamContext,
    durable: str,
    mine: str,
    born: datetime,
    until: str,
) -> list[str]:
    """Runs an ingester on ``durable`` until it handles step ``until``; its steps for ``mine``."""
    seen: list[str] = []
    done = asyncio.Event()

    async def handle(outcome: HostOutcome) -> None:
        if outcome.instance_id == mine:
            seen.append(outcome.step_id)
            if outcome.step_id == until:
                done.set()

    async def ensure() -> None:
        await ensure_streams(js, HostBus())

    async def birth() -> datetime:
        return born

    ingester = OutcomeIngester(
        js, handle, ensure_streams=ensure, durable=durable, born=birth, margin=timedelta(0)
    )
    stop = asyncio.Event()
    running = asyncio.create_task(ingester.run(stop))
    try:
        await asyncio.wait_for(done.wait(), 20)
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
    return seen


def _outcome(host: str, instance: str, step: str) -> bytes:
    return hostwire.encode(
        HostOutcome(
            step_id=step,
            host_id=host,
            instance_id=instance,
            action=Action.ENSURE_RUNNING,
            ok=True,
            state=PowerState.RUNNING,
        )
    )


@contextlib.asynccontextmanager
async def one_host(nats_url: str) -> AsyncIterator[tuple[JetStreamContext, str, str, str]]:
    """JetStream, a host, an instance of it and a durable for an ingester, removed after."""
    client = await nats.connect(nats_url)
    js = client.jetstream()
    await ensure_streams(js, HostBus())
    durable = f"test-ingester-{secrets.token_hex(4)}"
    try:
        yield js, f"hst-{secrets.token_hex(4)}", f"i-{secrets.token_hex(6)}", durable
    finally:
        with contextlib.suppress(Exception):
            await js.delete_consumer(hostwire.OUTCOMES_STREAM, durable)
        await client.close()


async def test_a_new_platform_skips_outcomes_from_before_it_was_born(nats_url: str) -> None:
    async with one_host(nats_url) as (js, host, mine, durable):
        await js.publish(hostwire.outcome_subject(host), _outcome(host, mine, "stp-before"))
        await asyncio.sleep(1.0)
        born = datetime.now(UTC)
        await js.publish(hostwire.outcome_subject(host), _outcome(host, mine, "stp-after"))
        seen = await _handled_steps(js, durable, mine, born, until="stp-after")
        assert seen == ["stp-after"]


async def test_a_restarted_platform_keeps_its_place_whatever_its_birth(nats_url: str) -> None:
    async with one_host(nats_url) as (js, host, mine, durable):
        long_ago = datetime.now(UTC) - timedelta(seconds=30)
        await js.publish(hostwire.outcome_subject(host), _outcome(host, mine, "stp-first"))
        assert await _handled_steps(js, durable, mine, long_ago, until="stp-first") == ["stp-first"]
        # Published while the platform was away; a consumer made afresh with this birth
        # would start after it.
        await js.publish(hostwire.outcome_subject(host), _outcome(host, mine, "stp-while-away"))
        await asyncio.sleep(1.0)
        later = datetime.now(UTC)
        seen = await _handled_steps(js, durable, mine, later, until="stp-while-away")
        assert seen == ["stp-while-away"]
