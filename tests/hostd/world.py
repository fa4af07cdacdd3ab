"""Helpers for the host daemon tests: commands in, outcomes out, drivers that misbehave."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from nats.aio.client import Client
from nats.js.api import Header

from gateways.bus import hostwire
from gateways.bus.hostwire import Action, GuestSpec, HostCommand, HostOutcome
from hostd.apply import Host
from hostd.daemon import DaemonOptions, HostDaemon
from hostd.drivers.compute.port import ComputeDriver, ConsoleAddress, InstanceSpec, PowerState
from hostd.outcomes import OutcomeSink
from hostd.streams import HostBus, ensure_streams

FAST = DaemonOptions(
    ack_wait=1.5,
    keepalive=0.4,
    pull_expires=2.0,
    observe_every=0.2,
    apply_timeout=10.0,
    drain_seconds=5.0,
)
"""Short timers so redeliveries and reports happen within a test."""


def instance_id() -> str:
    return f"i-{uuid.uuid4().hex[:20]}"


def command(
    host_id: str, instance: str, action: Action, spec: GuestSpec | None = None, **flags: bool
) -> HostCommand:
    return HostCommand(
        step_id=f"step-{uuid.uuid4().hex}",
        host_id=host_id,
        instance_id=instance,
        action=action,
        spec=spec,
        **flags,
    )


async def send(
    nc: Client, bus: HostBus, cmd: HostCommand | bytes, *, host_id: str | None = None,
    msg_id: str | None = None,
) -> None:  # fmt: skip
    """Publish like the platform does: the step id as message id, unless told otherwise."""
    if isinstance(cmd, HostCommand):
        payload, host_id, msg_id = hostwire.encode(cmd), cmd.host_id, msg_id or cmd.step_id
    else:
        payload, msg_id = cmd, msg_id or uuid.uuid4().hex
    assert host_id is not None
    await nc.jetstream().publish(
        bus.command_subject(host_id),
        payload,
        stream=bus.commands_stream,
        headers={Header.MSG_ID: msg_id},
    )


async def outcomes(nc: Client, bus: HostBus) -> list[HostOutcome]:
    """Every outcome in the stream, in stream order."""
    js = nc.jetstream()
    info = await js.stream_info(bus.outcomes_stream)
    if info.state.messages == 0:
        return []
    return [
        hostwire.decode_outcome((await js.get_msg(bus.outcomes_stream, seq=seq)).data or b"")
        for seq in range(info.state.first_seq, info.state.last_seq + 1)
    ]


async def wait_outcomes(
    nc: Client, bus: HostBus, count: int, timeout: float = 10.0
) -> list[HostOutcome]:
    """Wait until the stream holds ``count`` outcomes; all of them."""
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    while True:
        info = await js.stream_info(bus.outcomes_stream)
        if info.state.messages >= count:
            return await outcomes(nc, bus)
        if time.monotonic() > deadline:
            raise AssertionError(f"{info.state.messages} outcomes after {timeout}s, not {count}")
        await asyncio.sleep(0.05)


class Running:
    """A daemon running in a task, as a process would; ``kill`` cancels it mid-whatever."""

    def __init__(
        self, nc: Client, host: Host, bus: HostBus, *, options: DaemonOptions = FAST,
        outcomes: OutcomeSink | None = None,
    ) -> None:  # fmt: skip
        self.daemon = HostDaemon(nc, host, bus=bus, options=options, outcomes=outcomes)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Running:
        await ensure_streams(self.daemon.js, self.daemon.bus)
        self.task = asyncio.create_task(self.daemon.run(self.stop))
        return self

    async def kill(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def close(self) -> None:
        assert self.task is not None
        self.stop.set()
        await asyncio.wait_for(self.task, 10)


@contextmanager
def running_count(probe: Probe) -> Iterator[None]:
    probe.now += 1
    probe.peak = max(probe.peak, probe.now)
    try:
        yield
    finally:
        probe.now -= 1


class Probe(ComputeDriver):
    """A compute driver around another that records calls, can be slow, and can hang.

    ``hang_after`` names a call: once it has run, ``hung`` is set and the call never
    returns (until the task is cancelled), like a host killed right after it.
    """

    def __init__(self, inner: ComputeDriver, *, delay: float = 0.0) -> None:
        self.inner = inner
        self.delay = delay
        self.calls: list[tuple[str, str]] = []
        self.hang_after: str | None = None
        self.hung = asyncio.Event()
        self.called = asyncio.Event()
        self.now = 0
        self.peak = 0

    async def _after(self, name: str, instance: str) -> None:
        self.calls.append((name, instance))
        self.called.set()
        if self.hang_after == name:
            self.hung.set()
            await asyncio.Event().wait()

    async def define(self, spec: InstanceSpec) -> None:
        with running_count(self):
            await asyncio.sleep(self.delay)
            await self.inner.define(spec)
        await self._after("define", spec.instance_id)

    async def start(self, instance_id: str) -> None:
        with running_count(self):
            await asyncio.sleep(self.delay)
            await self.inner.start(instance_id)
        await self._after("start", instance_id)

    async def stop(self, instance_id: str, *, force: bool = False) -> None:
        with running_count(self):
            await asyncio.sleep(self.delay)
            await self.inner.stop(instance_id, force=force)
        await self._after("stop", instance_id)

    async def reboot(self, instance_id: str, *, hard: bool = False) -> None:
        await self.inner.reboot(instance_id, hard=hard)
        await self._after("reboot", instance_id)

    async def undefine(self, instance_id: str) -> None:
        await self.inner.undefine(instance_id)
        await self._after("undefine", instance_id)

    async def state(self, instance_id: str) -> PowerState:
        return await self.inner.state(instance_id)

    async def observed(self) -> dict[str, PowerState]:
        return await self.inner.observed()

    async def console(self, instance_id: str) -> ConsoleAddress | None:
        return await self.inner.console(instance_id)


class HangingOutcomes:
    """Stores the outcome, then hangs: a host killed between the outcome's ack and its own."""

    def __init__(self, inner: OutcomeSink) -> None:
        self.inner = inner
        self.published = asyncio.Event()

    async def publish(self, outcome: HostOutcome) -> None:
        await self.inner.publish(outcome)
        self.published.set()
        await asyncio.Event().wait()
