"""Many simulated hosts in one process: each a real daemon with its own durable consumer."""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client
from nats.js.api import Header

from gateways.bus import hostwire
from gateways.bus.hostwire import Action, GuestSpec, PowerState
from hostd.fleet import SimulatedFleet
from hostd.streams import HostBus, durable_name
from tests.hostd.world import FAST, command, instance_id, wait_outcomes

SPEC = GuestSpec(vcpus=1, memory_mb=256, disk_gb=10, image_location="rbd:images/tiny")


async def test_a_fleet_of_100_hosts_handles_1000_commands(
    nats_url: str, nc: Client, bus: HostBus
) -> None:
    async with SimulatedFleet(100, nats_url, bus=bus, options=FAST, heartbeat_every=None) as fleet:
        info = await nc.jetstream().consumer_info(
            bus.commands_stream, durable_name(fleet.host_ids[7])
        )
        assert info.config.filter_subject == bus.command_subject(fleet.host_ids[7])

        js = nc.jetstream()
        sent = []
        started = time.monotonic()
        for index in range(1000):
            host_id = fleet.host_ids[index % 100]
            step = command(host_id, instance_id(), Action.ENSURE_RUNNING, SPEC)
            sent.append(step)
            await js.publish_async(
                bus.command_subject(host_id),
                hostwire.encode(step),
                stream=bus.commands_stream,
                headers={Header.MSG_ID: step.step_id},
            )
        await js.publish_async_completed()
        results = await wait_outcomes(nc, bus, 1000, timeout=30)
        elapsed = time.monotonic() - started
        assert {o.step_id for o in results} == {s.step_id for s in sent}
        assert all(o.ok and o.state == PowerState.RUNNING for o in results)
        for step in sent[:50]:
            assert fleet.computes[step.host_id].states[step.instance_id].value == "running"
        assert all(len(compute.states) == 10 for compute in fleet.computes.values())
        print(f"fleet of 100: 1000 commands in {elapsed:.2f}s ({1000 / elapsed:.0f}/s)")


async def test_fleet_hosts_report_what_they_run(nats_url: str, nc: Client, bus: HostBus) -> None:
    reports: dict[str, hostwire.ObservedState] = {}
    seen = asyncio.Event()

    async def receive(msg: object) -> None:
        report = hostwire.decode_observed(msg.data)  # type: ignore[attr-defined]
        reports[report.host_id] = report
        if len(reports) == 3 and all(r.instances for r in reports.values()):
            seen.set()

    subscription = await nc.subscribe(f"{bus.observed_prefix}.>", cb=receive)
    try:
        async with SimulatedFleet(
            3, nats_url, bus=bus, options=FAST, heartbeat_every=None
        ) as fleet:
            js = nc.jetstream()
            for host_id in fleet.host_ids:
                step = command(host_id, instance_id(), Action.ENSURE_RUNNING, SPEC)
                await js.publish(bus.command_subject(host_id), hostwire.encode(step))
            await asyncio.wait_for(seen.wait(), 10)
            assert set(reports) == set(fleet.host_ids)
    finally:
        await subscription.unsubscribe()
