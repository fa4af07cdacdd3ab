"""Outcomes from hosts, consumed from JetStream and handed to the platform one by one.

Each is acknowledged only after it was handled, so a crash redelivers it; handling is
idempotent (the step id is the command id). A platform's durable consumer, made the first
time it runs, starts at the platform's birth, not at the stream's first message: the stream
is shared by every platform on the NATS server, and replaying all of it for a new one made
each new platform slower than the last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError

from gateways.bus import hostwire
from gateways.bus.hostwire import HostOutcome

log = logging.getLogger(__name__)
DURABLE = "scloud-outcome-ingester"
REDELIVER_AFTER = 1.0
"""Seconds before an outcome whose handling failed (the database away, a conflict that
outlasted every retry) is delivered again."""
CLOCK_MARGIN = timedelta(minutes=5)
"""How much earlier than the platform's birth a new consumer starts, for the difference
between the database's clock and the NATS server's."""


class OutcomeIngester:
    def __init__(
        self,
        js: JetStreamContext,
        handle: Callable[[HostOutcome], Awaitable[None]],
        *,
        ensure_streams: Callable[[], Awaitable[None]],
        durable: str = DURABLE,
        born: Callable[[], Awaitable[datetime | None]] | None = None,
        margin: timedelta = CLOCK_MARGIN,
    ) -> None:
        """``born`` tells when the platform began (None: it has not); no outcome older
        than that can be for it. Without it a new consumer reads the whole stream."""
        self.ensure_streams = ensure_streams
        self.js = js
        self.handle = handle
        self.durable = durable
        self.born = born
        self.margin = margin

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.ensure_streams()
                subscription = await self.js.pull_subscribe(
                    f"{hostwire.OUTCOMES_PREFIX}.>",
                    durable=self.durable,
                    stream=hostwire.OUTCOMES_STREAM,
                    config=await self._config(),
                )
                try:
                    await self._consume(subscription, stop)
                finally:
                    with contextlib.suppress(Exception):
                        await subscription.unsubscribe()
            except Exception as error:  # NATS or the database hiccuped: start over
                log.warning("outcome ingester: %s", error)
                await asyncio.sleep(1.0)

    async def _config(self) -> ConsumerConfig:
        """Used only when the durable does not exist yet; an existing one keeps its place."""
        config = ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=60)
        if self.born is None:
            return config
        born = await self.born()
        start = (born if born is not None else datetime.now().astimezone()) - self.margin
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = start
        return config

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
