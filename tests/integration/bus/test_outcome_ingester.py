"""A host outcome whose handling fails is not lost: it comes again until it is handled."""

from __future__ import annotations

import asyncio
import secrets

import nats

from gateways.bus import hostwire
from gateways.bus.hostwire import Action, HostOutcome
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
            state="running",
        )
        await js.publish(hostwire.outcome_subject(host), hostwire.encode(outcome))
        await asyncio.wait_for(handled.wait(), 20)
        assert attempts == ["stp-once"] * 3  # twice refused, then handled: never dropped
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await js.delete_consumer(hostwire.OUTCOMES_STREAM, durable)
        await client.close()
