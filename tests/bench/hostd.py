"""Host daemon throughput, and what 1,000 simulated hosts in one process cost.

Phases, on the machine's NATS (or an embedded one), with streams of the bench's own:
- one daemon, simulated drivers: 5,000 commands over 1,000 instances (8 at once), then
  500 commands for one instance (strictly one after another): commands/s and
  publish-to-outcome p50/p95; baseline: pipelined JetStream publishes of the same size.
- a fleet of 1,000 hosts (``SimulatedFleet``, one durable consumer each, heartbeats every
  5 s, observed-state reports every 30 s): start time, memory of this process, CPU of
  this process and of nats-server while idle, then 10,000 commands spread over the hosts
  at once and 2,500 at 500/s. (nats-server's RSS is left out: its garbage collector
  moves it by more than 1,000 consumers add.)

Run: ``python -m tests.bench.hostd [--hosts 1000] [--commands 10000]`` from the repository root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import Header
from nats.js.errors import NotFoundError

from gateways.bus import hostwire
from gateways.bus.hostwire import Action, GuestSpec, HostCommand
from hostd.apply import Host, HostLayout
from hostd.daemon import DaemonOptions, HostDaemon
from hostd.drivers.compute.simulated import SimulatedCompute
from hostd.fleet import SimulatedFleet
from hostd.storage.simulated import SimulatedStorage
from hostd.streams import HostBus, ensure_streams
from tests.bench.common import nats_server, report

SPEC = GuestSpec(vcpus=2, memory_mb=2048, disk_gb=20, image_location="rbd:images/debian-12")


def _bus() -> HostBus:
    tag = uuid.uuid4().hex[:8]
    return HostBus(
        commands_stream=f"BENCH{tag}_HOST_COMMANDS",
        outcomes_stream=f"BENCH{tag}_HOST_OUTCOMES",
        commands_prefix=f"bench{tag}.cmd.host",
        outcomes_prefix=f"bench{tag}.outcome.host",
        observed_prefix=f"bench{tag}.observed.host",
    )


@contextlib.asynccontextmanager
async def _streams(nc: Client, bus: HostBus) -> AsyncIterator[None]:
    await ensure_streams(nc.jetstream(), bus)
    try:
        yield
    finally:
        for stream in (bus.commands_stream, bus.outcomes_stream):
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_stream(stream)


def _rss_mib(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _cpu_seconds(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _nats_pid() -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "nats-server":
                    return int(entry.name)
    return None


class Clock:
    """Publish times and outcome arrival times by step id."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.seen: dict[str, float] = {}
        self.all_seen = asyncio.Event()
        self.expected = 0

    async def on_outcome(self, msg: Msg) -> None:
        self.seen.setdefault(hostwire.decode_outcome(msg.data).step_id, time.perf_counter())
        if len(self.seen) >= self.expected:
            self.all_seen.set()

    def latencies_ms(self) -> list[float]:
        return sorted((self.seen[step] - self.sent[step]) * 1000 for step in self.sent)


async def _run(
    nc: Client, bus: HostBus, commands: Sequence[HostCommand], rate: float | None = None
) -> dict[str, float]:
    """Publish ``commands`` pipelined (or ``rate`` a second); commands/s and latency.

    Latency runs from a command's publish to its outcome's arrival; at full speed it is
    mostly queueing, at a fixed rate it is what one command costs.
    """
    clock = Clock()
    clock.expected = len(commands)
    subscription = await nc.subscribe(f"{bus.outcomes_prefix}.>", cb=clock.on_outcome)
    js = nc.jetstream()
    started = time.perf_counter()
    for index, cmd in enumerate(commands):
        if rate is not None:
            due = started + index / rate
            if due > time.perf_counter():
                await js.publish_async_completed()
                await asyncio.sleep(due - time.perf_counter())
        clock.sent[cmd.step_id] = time.perf_counter()
        await js.publish_async(
            bus.command_subject(cmd.host_id),
            hostwire.encode(cmd),
            stream=bus.commands_stream,
            headers={Header.MSG_ID: cmd.step_id},
        )
    await js.publish_async_completed()
    await asyncio.wait_for(clock.all_seen.wait(), 600)
    elapsed = time.perf_counter() - started
    await subscription.unsubscribe()
    latencies = clock.latencies_ms()
    return {
        "commands/s": len(commands) / elapsed,
        "p50 ms": statistics.median(latencies),
        "p95 ms": latencies[int(len(latencies) * 0.95)],
    }


def _running(host_id: str, instances: Sequence[str], total: int) -> list[HostCommand]:
    return [
        HostCommand(
            step_id=uuid.uuid4().hex,
            host_id=host_id,
            instance_id=instances[index % len(instances)],
            action=Action.ENSURE_RUNNING,
            spec=SPEC,
        )
        for index in range(total)
    ]


async def _baseline(nc: Client, bus: HostBus, total: int) -> float:
    """Pipelined JetStream publishes of command-sized messages: the ceiling for the above."""
    js = nc.jetstream()
    payload = hostwire.encode(_running("bench", ["i-x"], 1)[0])
    started = time.perf_counter()
    for index in range(total):
        await js.publish_async(
            f"{bus.outcomes_prefix}.baseline",
            payload,
            stream=bus.outcomes_stream,
            headers={Header.MSG_ID: f"baseline-{index}"},
        )
    await js.publish_async_completed()
    return total / (time.perf_counter() - started)


async def one_daemon(url: str) -> dict[str, float]:
    nc = await nats.connect(url, name="bench-hostd")
    bus = _bus()
    figures: dict[str, float] = {}
    async with _streams(nc, bus):
        host = Host("bench-1", SimulatedCompute(), SimulatedStorage(), HostLayout(Path("/sim")))
        daemon = HostDaemon(nc, host, bus=bus)
        stop = asyncio.Event()
        task = asyncio.create_task(daemon.run(stop))
        instances = [f"i-{index:06d}" for index in range(1000)]
        await _run(nc, bus, _running("bench-1", instances, 200))  # warm up
        many = await _run(nc, bus, _running("bench-1", instances, 5000))
        one = await _run(nc, bus, _running("bench-1", ["i-alone"], 500))
        paced = await _run(nc, bus, _running("bench-1", instances, 1000), rate=200)
        stop.set()
        await task
        figures |= {f"one daemon, 1,000 instances: {k}": v for k, v in many.items()}
        figures |= {f"one daemon, one instance: {k}": v for k, v in one.items()}
        figures |= {f"one daemon, 200 commands/s: {k}": v for k, v in paced.items()}
        figures["baseline: pipelined JetStream publishes/s"] = await _baseline(nc, bus, 5000)
    await nc.drain()
    return figures


async def fleet(url: str, hosts: int, commands: int) -> dict[str, float]:
    nc = await nats.connect(url, name="bench-hostd-load")
    bus = _bus()
    bucket = f"bench_hosts_{uuid.uuid4().hex[:8]}"
    nats_pid = _nats_pid()
    figures: dict[str, float] = {}
    async with _streams(nc, bus):
        rss_before = _rss_mib()
        started = time.perf_counter()
        async with SimulatedFleet(
            hosts, url, bus=bus, options=DaemonOptions(), bucket_name=bucket
        ) as simulated:
            figures[f"fleet of {hosts}: start s"] = time.perf_counter() - started
            await asyncio.sleep(2)
            figures[f"fleet of {hosts}: this process RSS growth MiB"] = _rss_mib() - rss_before
            idle = 20.0
            cpu = _cpu_seconds()
            server_cpu = _cpu_seconds(nats_pid) if nats_pid else 0.0
            await asyncio.sleep(idle)
            figures[f"fleet of {hosts}: idle CPU % (this process)"] = (
                (_cpu_seconds() - cpu) / idle * 100
            )
            if nats_pid:
                figures[f"fleet of {hosts}: idle CPU % (nats-server)"] = (
                    (_cpu_seconds(nats_pid) - server_cpu) / idle * 100
                )
            plan = [
                cmd
                for index in range(commands)
                for cmd in _running(simulated.host_ids[index % hosts], [f"i-{index:07d}"], 1)
            ]
            cpu = _cpu_seconds()
            loaded = await _run(nc, bus, plan)
            figures |= {f"fleet of {hosts}, {commands} at once: {k}": v for k, v in loaded.items()}
            figures[f"fleet of {hosts}: CPU ms per command (this process)"] = (
                (_cpu_seconds() - cpu) * 1000 / commands
            )
            paced = [
                cmd
                for index in range(2500)
                for cmd in _running(simulated.host_ids[(index * 7) % hosts], [f"i-p{index:07d}"], 1)
            ]
            steady = await _run(nc, bus, paced, rate=500)
            figures |= {f"fleet of {hosts}, 500 commands/s: {k}": v for k, v in steady.items()}
            figures[f"fleet of {hosts}: peak RSS MiB (this process)"] = (
                resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            )
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_key_value(bucket)
    await nc.drain()
    return figures


async def main(hosts: int, commands: int) -> None:
    async with nats_server() as url:
        # The fleet first: this process's memory growth is only meaningful from a fresh start.
        many = await fleet(url, hosts, commands)
        single = await one_daemon(url)
    baseline = single["baseline: pipelined JetStream publishes/s"]
    report(
        "hostd: commands through NATS with the simulated drivers",
        single | many,
        {
            "one daemon vs pipelined publishes": single["one daemon, 1,000 instances: commands/s"]
            / baseline
        },
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--commands", type=int, default=10000)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.hosts, arguments.commands))
