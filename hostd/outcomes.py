"""Where a host's outcomes go: JetStream, one message per step, the step id as message id."""

from __future__ import annotations

from typing import Protocol

from nats.js import JetStreamContext
from nats.js.api import Header

from gateways.bus import hostwire
from gateways.bus.hostwire import HostOutcome
from hostd.streams import HostBus


class OutcomeSink(Protocol):
    async def publish(self, outcome: HostOutcome) -> None:
        """Return only once the outcome is stored (or known to be a duplicate)."""
        ...


class JetStreamOutcomes:
    def __init__(self, js: JetStreamContext, bus: HostBus, *, timeout: float = 5.0) -> None:
        self.js = js
        self.bus = bus
        self.timeout = timeout

    async def publish(self, outcome: HostOutcome) -> None:
        # The step id as Nats-Msg-Id: an outcome republished after a redelivery is dropped
        # by the stream's duplicate window (the PubAck says duplicate, which is success).
        await self.js.publish(
            self.bus.outcome_subject(outcome.host_id),
            hostwire.encode(outcome),
            timeout=self.timeout,
            stream=self.bus.outcomes_stream,
            headers={Header.MSG_ID: outcome.step_id},
        )
