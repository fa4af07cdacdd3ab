"""The host daemon: pulls its commands, applies them, reports outcomes and observed state.

One per hypervisor, talking only to NATS. Its durable pull consumer on
``cmd.host.<host_id>`` survives restarts: whatever was delivered and not acked comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from gateways.waiting import wait_any
from hostd import observer
from hostd.apply import Host
from hostd.outcomes import JetStreamOutcomes, OutcomeSink
from hostd.pull import Puller, PullHub
from hostd.runner import HostRunner
from hostd.streams import (
    HostBus,
    checked_host_id,
    durable_name,
    ensure_consumer,
    ensure_streams,
)

log = logging.getLogger(__name__)


class DaemonOptions(msgspec.Struct, frozen=True, kw_only=True):
    concurrency: int = 8
    """Commands applied at once (each instance's commands run one after another)."""
    window: int = 64
    """Commands in hand at once, running or queued behind their instance."""
    ack_wait: float = 60.0
    """Before JetStream redelivers an unacked command; in-progress acks extend it while a
    command is in hand, so it only matters after a crash."""
    keepalive: float = 15.0
    pull_expires: float = 30.0
    apply_timeout: float = 600.0
    observe_every: float = 30.0
    drain_seconds: float = 30.0
    """On stop, how long commands already started may take to finish."""


class HostDaemon:
    def __init__(
        self,
        nc: Client,
        host: Host,
        *,
        bus: HostBus | None = None,
        options: DaemonOptions | None = None,
        outcomes: OutcomeSink | None = None,
    ) -> None:
        checked_host_id(host.host_id)
        self.nc = nc
        self.js = nc.jetstream()
        self.host = host
        self.bus = bus or HostBus()
        self.options = options or DaemonOptions()
        self.runner = HostRunner(
            host,
            outcomes or JetStreamOutcomes(self.js, self.bus),
            concurrency=self.options.concurrency,
            apply_timeout=self.options.apply_timeout,
        )
        self.instances: int | None = None
        """The instance count seen by the last observed-state report."""

    async def attach(self, hub: PullHub) -> Puller:
        """Make sure the host's consumer exists and start pulling from it through ``hub``."""
        durable = await ensure_consumer(
            self.js,
            self.host.host_id,
            self.bus,
            ack_wait=self.options.ack_wait,
            window=self.options.window,
        )
        return hub.add(
            self.bus.commands_stream, durable, self.runner.accept, window=self.options.window
        )

    async def detach(self, hub: PullHub, puller: Puller) -> None:
        """Stop pulling, hand back what has not started, let started commands finish."""
        hub.stop(puller)
        try:
            async with asyncio.timeout(self.options.drain_seconds):
                await self.runner.drain()
        except TimeoutError:
            log.warning("hostd %s: commands still running at stop", self.host.host_id)
        finally:
            await self.runner.lanes.cancel()
            hub.remove(puller)

    async def report(self) -> None:
        self.instances = await observer.report(
            self.nc, self.bus, self.host.host_id, self.host.compute
        )

    async def check_consumer(self) -> None:
        """Recreate the host's consumer (and streams) if they were deleted under it.

        A pull on a consumer that no longer exists gets no answer at all: without this
        check the host would wait for commands forever.
        """
        try:
            await self.js.consumer_info(self.bus.commands_stream, durable_name(self.host.host_id))
        except NotFoundError:
            log.warning("hostd %s: its consumer was gone; recreating it", self.host.host_id)
            await ensure_streams(self.js, self.bus)
            await ensure_consumer(
                self.js,
                self.host.host_id,
                self.bus,
                ack_wait=self.options.ack_wait,
                window=self.options.window,
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Serve commands and report observed state until ``stop`` is set."""
        await ensure_streams(self.js, self.bus)
        hub = PullHub(self.nc, expires=self.options.pull_expires, keepalive=self.options.keepalive)
        await hub.start()
        halt = asyncio.Event()
        reports = asyncio.create_task(self._report_every(stop, halt), name="hostd-observed")
        try:
            puller = await self.attach(hub)
            await stop.wait()
            await self.detach(hub, puller)
        finally:
            # ``halt`` as well as cancel: nats-py's requests use wait_for, which on 3.11 can
            # swallow a cancellation; the loop must end anyway, or it outlives the daemon.
            halt.set()
            reports.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reports
            # Killed (cancelled) mid-command: nothing is acked, everything comes back.
            await self.runner.lanes.cancel()
            await hub.close()

    async def _report_every(self, stop: asyncio.Event, halt: asyncio.Event) -> None:
        while not (stop.is_set() or halt.is_set()):
            try:
                await self.report()
                await self.check_consumer()
            except Exception as error:
                log.warning("hostd %s: periodic report failed: %s", self.host.host_id, error)
            await wait_any(stop, halt, timeout=self.options.observe_every)
