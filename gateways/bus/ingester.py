"""Outcomes from hosts, consumed from JetStream and handed to the platform one by one.

Each is acknowledged only after it was handled, so a crash redelivers it; handling is
idempotent (the step id is the command id).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import FetchTimeoutError

from gateways.bus import hostwire
from gateways.bus.hostwire import HostOutcome

log = logging.getLogger(__name__)
DURABLE = "scloud-outcome-ingester"
REDELIVER_AFTER = 1.0
"""Seconds before an outcome whose handling failed (the database away, a conflict that
outlasted every retry) is delivered again."""


class OutcomeIngester:
    def __init__(
        self,
        js: JetStreamContext,
        handle: Callable[[HostOutcome], Awaitable[None]],
        *,
        ensure_streams: Callable[[], Awaitable[None]],
        durable: str = DURABLE,
    ) -> None:
        self.ensure_streams = ensure_streams
        self.js = js
        self.handle = handle
        self.durable = durable

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.ensure_streams()
                subscription = await self.js.pull_subscribe(
                    f"{hostwire.OUTCOMES_PREFIX}.>",
                    durable=self.durable,
                    stream=hostwire.OUTCOMES_STREAM,
                    config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60),
                )
                try:
                    await self._consume(subscription, stop)
                finally:
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()
            except Exception as error:  # NATS or the database hiccuped: start over
                log.warning("outcome ingester: %s", error)
                await asyncio.sleep(1.0)

    async def _consume(
        self, subscription: JetStreamContext.PullSubscription, stop: asyncio.Event
    ) -> None:
        while not stop.is_set():
            try:
                messages = await subscription.fetch(64, timeout=1.0)
            except (FetchTimeoutError, TimeoutError):
                continue
            # One instance's outcomes in the order they came; different instances at once.
            lanes: dict[str, list[tuple[Msg, HostOutcome]]] = {}
            for message in messages:
                try:
                    outcome = hostwire.decode_outcome(message.data)
                except Exception:  # not an outcome: nothing can ever make it one
                    await message.term()
                    continue
                lanes.setdefault(outcome.instance_id, []).append((message, outcome))
            await asyncio.gather(*(self._lane(lane) for lane in lanes.values()))

    async def _lane(self, lane: list[tuple[Msg, HostOutcome]]) -> None:
        for index, (message, outcome) in enumerate(lane):
            try:
                await self.handle(outcome)
            except Exception as error:
                # Not handled, so not acknowledged: sent again shortly (with what follows
                # it, in order), never dropped.
                log.warning("outcome %s not handled yet: %s", outcome.step_id, error)
                for later, _ in lane[index:]:
                    await later.nak(delay=REDELIVER_AFTER)
                return
            await message.ack()
