"""``run_hostd`` as ``scloud hostd`` runs it, and a daemon whose consumer is deleted under it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from gateways.bus.hostwire import Action, GuestSpec
from gateways.settings import Settings
from hostd.apply import Host, HostLayout
from hostd.drivers.compute.simulated import SimulatedCompute
from hostd.heartbeat import Heartbeat
from hostd.main import run_hostd
from hostd.storage.simulated import SimulatedStorage
from hostd.streams import HostBus, durable_name
from tests.hostd.world import Running, command, instance_id, send, wait_outcomes

SPEC = GuestSpec(vcpus=1, memory_mb=128, disk_gb=1, image_location="/images/any.qcow2")


async def test_run_hostd_with_the_simulated_driver_serves_commands_and_beats(
    nats_url: str, nc: Client, bus: HostBus, tmp_path: Path
) -> None:
    settings = Settings(host_driver="simulated", state_dir=tmp_path, host_observe_seconds=0.2)
    bucket = f"test_hosts_{uuid.uuid4().hex[:10]}"
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_hostd(nats_url, "wired", stop, settings, every=0.1, bus=bus, bucket_name=bucket)
    )
    try:
        step = command("wired", instance_id(), Action.ENSURE_RUNNING, SPEC)
        for _ in range(100):  # the daemon makes the streams; wait for them
            try:
                await send(nc, bus, step)
                break
            except Exception:
                await asyncio.sleep(0.05)
        [outcome] = await wait_outcomes(nc, bus, 1)
        assert outcome.ok, outcome.error
        js = nc.jetstream()
        for _ in range(100):
            entry = await (await js.key_value(bucket)).get("wired")
            beat = msgspec.json.decode(entry.value or b"", type=Heartbeat)
            if beat.instances == 1:
                break
            await asyncio.sleep(0.05)
        assert beat.instances == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await nc.jetstream().delete_key_value(bucket)


async def test_run_hostd_refuses_a_host_id_that_is_not_a_subject_token(
    nats_url: str, tmp_path: Path
) -> None:
    settings = Settings(host_driver="simulated", state_dir=tmp_path)
    with pytest.raises(ValueError, match="SCLOUD_HOST_ID"):
        await run_hostd(nats_url, "rack1.example.com", asyncio.Event(), settings)


async def test_a_deleted_consumer_is_recreated_and_commands_flow_again(
    nc: Client, bus: HostBus
) -> None:
    compute = SimulatedCompute("h1")
    host = Host("h1", compute, SimulatedStorage(), HostLayout(Path("/sim/h1")))
    daemon = await Running(nc, host, bus).start()
    try:
        await send(nc, bus, command("h1", instance_id(), Action.ENSURE_RUNNING, SPEC))
        await wait_outcomes(nc, bus, 1)
        await nc.jetstream().delete_consumer(bus.commands_stream, durable_name("h1"))
        await send(nc, bus, command("h1", instance_id(), Action.ENSURE_RUNNING, SPEC))
        results = await wait_outcomes(nc, bus, 2)
        assert all(outcome.ok for outcome in results)
    finally:
        await daemon.close()
