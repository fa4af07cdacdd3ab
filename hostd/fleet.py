"""Many simulated hosts in one process, for scale tests: ``SimulatedFleet(1000, nats_url)``.

Each host is a real ``HostDaemon`` (its own durable consumer on ``cmd.host.<host>``, its
own runner, outcomes and observed-state reports) over the simulated compute and storage
drivers, so the platform cannot tell it from a rack of hypervisors. What they share is
what would make 1,000 hosts heavy in one process: one NATS connection, one pull hub (one
inbox subscription, one loop), one observed-state loop and one heartbeat loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from types import TracebackType

import msgspec
import nats
from nats.aio.client import Client

from gateways.waiting import wait_any
from hostd.apply import Host, HostLayout
from hostd.daemon import DaemonOptions, HostDaemon
from hostd.drivers.compute.simulated import SimulatedCompute
from hostd.heartbeat import BUCKET, bucket, measure
from hostd.pull import Puller, PullHub
from hostd.storage.simulated import SimulatedStorage
from hostd.streams import HostBus, ensure_streams

log = logging.getLogger(__name__)


class SimulatedFleet:
    def __init__(
        self,
        n: int,
        nats_url: str,
        *,
        prefix: str = "sim",
        bus: HostBus | None = None,
        options: DaemonOptions | None = None,
        heartbeat_every: float | None = 5.0,
        bucket_name: str = BUCKET,
        host_ids: list[str] | None = None,
    ) -> None:
        """``heartbeat_every`` None sends no heartbeats (for tests of commands alone);
        ``host_ids`` names the hosts (the platform's ids) instead of ``prefix``-numbers."""
        self.nats_url = nats_url
        self.bus = bus or HostBus()
        self.options = options or DaemonOptions()
        self.heartbeat_every = heartbeat_every
        self.bucket_name = bucket_name
        self.host_ids = host_ids or [f"{prefix}-{index:05d}" for index in range(n)]
        self.computes: dict[str, SimulatedCompute] = {}
        # One set of peers for all: a guest migrates from one simulated host to another.
        for host_id in self.host_ids:
            self.computes[host_id] = SimulatedCompute(host_id, peers=self.computes)
        self._stop = asyncio.Event()
        self._nc: Client | None = None
        self._hub: PullHub | None = None
        self.daemons: dict[str, HostDaemon] = {}
        self._pullers: dict[str, Puller] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.loads: dict[str, float] = {}
        """One-minute load averages to report for these hosts instead of the machine's."""
        self.dead: set[str] = set()
        """Hosts whose daemon was killed: no commands, no heartbeats, no reports."""

    @property
    def nc(self) -> Client:
        assert self._nc is not None, "the fleet is not started"
        return self._nc

    async def start(self) -> None:
        self._nc = await nats.connect(self.nats_url, name="hostd-fleet", max_reconnect_attempts=-1)
        await ensure_streams(self.nc.jetstream(), self.bus)
        for host_id, compute in self.computes.items():
            host = Host(host_id, compute, SimulatedStorage(), HostLayout(Path("/sim") / host_id))
            self.daemons[host_id] = HostDaemon(self.nc, host, bus=self.bus, options=self.options)
        self._hub = PullHub(
            self.nc, expires=self.options.pull_expires, keepalive=self.options.keepalive
        )
        await self._hub.start()
        gate = asyncio.Semaphore(32)

        async def attach(daemon: HostDaemon) -> None:
            assert self._hub is not None
            async with gate:
                self._pullers[daemon.host.host_id] = await daemon.attach(self._hub)

        await asyncio.gather(*(attach(daemon) for daemon in self.daemons.values()))
        self._tasks.append(asyncio.create_task(self._report_every(), name="fleet-observed"))
        if self.heartbeat_every is not None:
            self._tasks.append(asyncio.create_task(self._beat_every(), name="fleet-heartbeats"))

    async def close(self) -> None:
        self._stop.set()
        if self._hub is not None:
            hub = self._hub
            await asyncio.gather(
                *(
                    self.daemons[host_id].detach(hub, puller)
                    for host_id, puller in self._pullers.items()
                )
            )
            await hub.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._nc is not None:
            await self._nc.drain()

    async def kill(self, host_id: str) -> None:
        """The host's daemon dies: it stops pulling, beating and reporting at once.

        Commands in hand are dropped unacked (JetStream hands them back later); the
        simulated hypervisor keeps its domains, as a real one would across a daemon crash.
        """
        assert self._hub is not None, "the fleet is not started"
        self.dead.add(host_id)
        puller = self._pullers.pop(host_id)
        self._hub.remove(puller)
        await self.daemons[host_id].runner.lanes.cancel()

    async def revive(self, host_id: str) -> None:
        """The daemon starts again: a new runner pulls from the same durable consumer."""
        assert self._hub is not None, "the fleet is not started"
        old = self.daemons[host_id]
        daemon = HostDaemon(self.nc, old.host, bus=self.bus, options=self.options)
        self.daemons[host_id] = daemon
        self._pullers[host_id] = await daemon.attach(self._hub)
        self.dead.discard(host_id)

    async def __aenter__(self) -> SimulatedFleet:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def handled(self) -> int:
        """Commands handled so far across the fleet."""
        return sum(daemon.runner.handled for daemon in self.daemons.values())

    async def _report_every(self) -> None:
        while not self._stop.is_set():
            for host_id, daemon in list(self.daemons.items()):
                if host_id not in self.dead:
                    await daemon.report()
            await wait_any(self._stop, timeout=self.options.observe_every)

    async def _beat_every(self) -> None:
        assert self.heartbeat_every is not None
        kv = await bucket(self.nc.jetstream(), self.bucket_name)
        while not self._stop.is_set():
            # One reading of the machine for all: the hosts share it anyway.
            base = measure("")
            hosts = [item for item in self.computes.items() if item[0] not in self.dead]
            for start in range(0, len(hosts), 200):
                results = await asyncio.gather(
                    *(
                        kv.put(
                            host_id,
                            msgspec.json.encode(
                                msgspec.structs.replace(
                                    base,
                                    host_id=host_id,
                                    instances=len(compute.states),
                                    load1=self.loads.get(host_id, base.load1),
                                )
                            ),
                        )
                        for host_id, compute in hosts[start : start + 200]
                    ),
                    return_exceptions=True,
                )
                failed = [result for result in results if isinstance(result, BaseException)]
                if failed:
                    log.warning("fleet: %d heartbeats not stored: %s", len(failed), failed[0])
            await wait_any(self._stop, timeout=self.heartbeat_every)
