"""The host daemon against real NATS: commands in, drivers driven, outcomes out, then the ack."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from nats.aio.client import Client

from gateways.bus import hostwire
from gateways.bus.hostwire import Action, GuestSpec
from gateways.bus.hostwire import PowerState as WireState
from hostd.apply import Host, HostLayout, tap_name
from hostd.drivers.compute.libvirt import LibvirtCompute
from hostd.drivers.compute.port import PowerState
from hostd.drivers.compute.simulated import SimulatedCompute
from hostd.heartbeat import Heartbeat, beat
from hostd.outcomes import JetStreamOutcomes
from hostd.storage.qcow2 import Qcow2Storage
from hostd.storage.simulated import SimulatedStorage
from hostd.streams import HostBus, durable_name
from tests.hostd.world import (
    HangingOutcomes,
    Probe,
    Running,
    command,
    instance_id,
    outcomes,
    send,
    wait_outcomes,
)

HOST = "h1"


def _make_image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "1M"], check=True)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "images" / "tiny.qcow2"
    _make_image(path)
    return path


@pytest.fixture
async def libvirt_host(tmp_path: Path) -> AsyncIterator[Host]:
    compute = LibvirtCompute("test:///default", domain_type="test", graceful_stop_seconds=1)
    layout = HostLayout(tmp_path / "host")
    layout.create()
    yield Host(HOST, compute, Qcow2Storage(layout.state_dir, pools=[tmp_path / "images"]), layout)
    await compute.close()


def simulated_host(probe_delay: float = 0.0) -> tuple[Host, Probe, SimulatedCompute]:
    compute = SimulatedCompute(HOST)
    probe = Probe(compute, delay=probe_delay)
    return Host(HOST, probe, SimulatedStorage(), HostLayout(Path("/sim") / HOST)), probe, compute


def guest(image: Path | str = "/images/tiny.qcow2", **changes: object) -> GuestSpec:
    fields: dict[str, object] = {
        "vcpus": 1,
        "memory_mb": 128,
        "disk_gb": 1,
        "image_location": str(image),
        "macs": ("52:54:00:00:00:01",),
    }
    fields.update(changes)
    return GuestSpec(**fields)  # type: ignore[arg-type]


async def settled(nc: Client, bus: HostBus, host_id: str = HOST) -> None:
    """Wait until the host's consumer has nothing delivered and unacked, nothing waiting."""
    js = nc.jetstream()
    for _ in range(200):
        info = await js.consumer_info(bus.commands_stream, durable_name(host_id))
        if info.num_ack_pending == 0 and info.num_pending == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"consumer not settled: {info}")


async def test_a_command_runs_the_domain_under_libvirt_and_an_ok_outcome_follows(
    nc: Client, bus: HostBus, libvirt_host: Host, image: Path, tmp_path: Path
) -> None:
    daemon = await Running(nc, libvirt_host, bus).start()
    try:
        instance = instance_id()
        wanted = command(HOST, instance, Action.ENSURE_RUNNING, guest(image, disk_gb=2))
        await send(nc, bus, wanted)
        [outcome] = await wait_outcomes(nc, bus, 1)
        assert outcome.step_id == wanted.step_id
        assert (outcome.ok, outcome.state, outcome.error) == (True, WireState.RUNNING, None)
        assert outcome.host_id == HOST and outcome.instance_id == instance
        assert await libvirt_host.compute.state(instance) == PowerState.RUNNING
        disk = tmp_path / "host" / "disks" / f"{instance}.qcow2"
        assert disk.exists()
        await settled(nc, bus)

        stop = command(HOST, instance, Action.ENSURE_STOPPED, force=True)
        absent = command(HOST, instance, Action.ENSURE_ABSENT)
        await send(nc, bus, stop)
        await send(nc, bus, absent)
        results = await wait_outcomes(nc, bus, 3)
        assert [(o.step_id, o.ok, o.state) for o in results[1:]] == [
            (stop.step_id, True, WireState.STOPPED),
            (absent.step_id, True, WireState.ABSENT),
        ]
        assert not disk.exists()
    finally:
        await daemon.close()


async def test_the_domain_gets_its_disk_nics_and_serial_log(
    nc: Client, bus: HostBus, image: Path, tmp_path: Path
) -> None:
    compute = SimulatedCompute(HOST)
    layout = HostLayout(tmp_path / "host")
    host = Host(HOST, compute, Qcow2Storage(layout.state_dir, pools=[tmp_path / "images"]), layout)
    daemon = await Running(nc, host, bus).start()
    try:
        instance = instance_id()
        macs = ("52:54:00:00:00:01", "52:54:00:00:00:02")
        kernel = image.parent / "vmlinuz"
        kernel.write_bytes(b"kernel")
        spec = guest(image, macs=macs, kernel=str(kernel), cmdline="console=ttyS0")
        await send(nc, bus, command(HOST, instance, Action.ENSURE_RUNNING, spec))
        [outcome] = await wait_outcomes(nc, bus, 1)
        assert outcome.ok, outcome.error
        defined = compute.specs[instance]
        assert defined.disk_path == str(tmp_path / "host" / "disks" / f"{instance}.qcow2")
        assert [(nic.mac, nic.tap) for nic in defined.nics] == [
            (macs[0], tap_name(instance, 0)),
            (macs[1], tap_name(instance, 1)),
        ]
        assert all(len(nic.tap) <= 15 for nic in defined.nics)
        assert (defined.kernel, defined.cmdline) == (str(kernel), "console=ttyS0")
        assert defined.serial_log == str(tmp_path / "host" / "serial" / f"{instance}.log")
    finally:
        await daemon.close()


@pytest.mark.parametrize(
    ("field", "outside"),
    [
        ("image", "/etc/shadow"),
        ("kernel", "/etc/shadow"),
        ("initrd", "{pool}/../secret"),
        ("kernel", "{pool}/link-out"),
        ("image", "{pool}/link-out"),
    ],
)
async def test_a_step_naming_a_file_outside_the_host_s_pools_is_refused_whoever_sent_it(
    nc: Client, bus: HostBus, image: Path, tmp_path: Path, field: str, outside: str
) -> None:
    """The platform checks registrations; the host does not trust that it did."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret")
    (image.parent / "link-out").symlink_to(secret)  # in the pool, pointing out of it
    path = outside.replace("{pool}", str(image.parent))
    compute = SimulatedCompute(HOST)
    layout = HostLayout(tmp_path / "host")
    host = Host(HOST, compute, Qcow2Storage(layout.state_dir, pools=[image.parent]), layout)
    daemon = await Running(nc, host, bus).start()
    try:
        instance = instance_id()
        spec = guest(path) if field == "image" else guest(image, **{field: path})
        await send(nc, bus, command(HOST, instance, Action.ENSURE_RUNNING, spec))
        [outcome] = await wait_outcomes(nc, bus, 1)
        assert not outcome.ok
        assert (
            outcome.error == f"image_path_outside_pool: {path} is not in an image pool of this host"
        )
        assert instance not in compute.specs
        assert not (tmp_path / "host" / "disks" / f"{instance}.qcow2").exists()
    finally:
        await daemon.close()


async def test_a_missing_image_gives_a_failed_outcome_with_its_cause(
    nc: Client, bus: HostBus, libvirt_host: Host, tmp_path: Path
) -> None:
    daemon = await Running(nc, libvirt_host, bus).start()
    try:
        instance = instance_id()
        missing = tmp_path / "images" / "not-there.qcow2"
        await send(nc, bus, command(HOST, instance, Action.ENSURE_RUNNING, guest(missing)))
        [outcome] = await wait_outcomes(nc, bus, 1)
        assert not outcome.ok
        assert outcome.error is not None and "not-there.qcow2" in outcome.error
        assert outcome.state == WireState.ABSENT
        await settled(nc, bus)
    finally:
        await daemon.close()


async def test_the_same_step_sent_twice_is_applied_twice_and_reported_once(
    nc: Client, bus: HostBus
) -> None:
    host, probe, compute = simulated_host()
    daemon = await Running(nc, host, bus).start()
    try:
        wanted = command(HOST, instance_id(), Action.ENSURE_RUNNING, guest())
        await send(nc, bus, wanted, msg_id="first")
        await send(nc, bus, wanted, msg_id="second")
        await wait_outcomes(nc, bus, 1)
        await settled(nc, bus)
        assert probe.calls.count(("start", wanted.instance_id)) == 2
        assert len(await outcomes(nc, bus)) == 1, "the step id dedups the second outcome"
        assert compute.states[wanted.instance_id] == PowerState.RUNNING
    finally:
        await daemon.close()


@pytest.mark.parametrize("killed", ["after apply", "after the outcome's ack"])
async def test_a_daemon_killed_before_its_ack_gets_the_command_again(
    nc: Client, bus: HostBus, killed: str
) -> None:
    host, probe, compute = simulated_host()
    hanging = HangingOutcomes(JetStreamOutcomes(nc.jetstream(), bus))
    if killed == "after apply":
        probe.hang_after = "start"
        first = await Running(nc, host, bus).start()
        hung = probe.hung
    else:
        first = await Running(nc, host, bus, outcomes=hanging).start()
        hung = hanging.published
    wanted = command(HOST, instance_id(), Action.ENSURE_RUNNING, guest())
    await send(nc, bus, wanted)
    await asyncio.wait_for(hung.wait(), 10)
    await first.kill()
    assert compute.states[wanted.instance_id] == PowerState.RUNNING
    expected_before = 1 if killed == "after the outcome's ack" else 0
    assert len(await outcomes(nc, bus)) == expected_before

    probe.hang_after = None
    second = await Running(nc, host, bus).start()
    try:
        [outcome] = await wait_outcomes(nc, bus, 1)
        await settled(nc, bus)
        assert probe.calls.count(("start", wanted.instance_id)) == 2, "applied again"
        assert outcome.ok and outcome.step_id == wanted.step_id
        assert len(await outcomes(nc, bus)) == 1
    finally:
        await second.close()


async def test_malformed_commands_are_terminated_and_answered_when_they_name_a_step(
    nc: Client, bus: HostBus
) -> None:
    host, _, compute = simulated_host()
    daemon = await Running(nc, host, bus).start()
    try:
        await send(nc, bus, b"\x00not json at all", host_id=HOST)
        await send(nc, bus, b'{"step_id": "s-unknown-action", "action": "explode"}', host_id=HOST)
        broken_spec = {
            "step_id": "s-broken",
            "host_id": HOST,
            "instance_id": "i-broken",
            "action": "ensure_running",
            "spec": {"vcpus": "two"},
        }
        await send(nc, bus, msgspec.json.encode(broken_spec), host_id=HOST)
        elsewhere = command("h2", instance_id(), Action.ENSURE_STOPPED)
        await send(nc, bus, hostwire.encode(elsewhere), host_id=HOST)
        good = command(HOST, instance_id(), Action.ENSURE_RUNNING, guest())
        await send(nc, bus, good)

        results = {o.step_id: o for o in await wait_outcomes(nc, bus, 3)}
        await settled(nc, bus)
        assert set(results) == {"s-broken", elsewhere.step_id, good.step_id}
        broken = results["s-broken"]
        assert not broken.ok and broken.error is not None
        assert broken.error.startswith("malformed command")
        assert "vcpus" in broken.error
        assert not results[elsewhere.step_id].ok
        assert "h2" in (results[elsewhere.step_id].error or "")
        assert results[good.step_id].ok
        assert compute.states[good.instance_id] == PowerState.RUNNING
        assert daemon.task is not None and not daemon.task.done()
        info = await nc.jetstream().stream_info(bus.commands_stream)
        assert info.state.messages == 0, "terminated and acked commands leave the work queue"
    finally:
        await daemon.close()


async def test_commands_for_one_instance_apply_in_order_others_concurrently(
    nc: Client, bus: HostBus
) -> None:
    host, probe, compute = simulated_host(probe_delay=0.02)
    daemon = await Running(nc, host, bus).start()
    try:
        instances = [instance_id() for _ in range(12)]
        plan = [
            (Action.ENSURE_RUNNING, guest()),
            (Action.ENSURE_STOPPED, None),
            (Action.ENSURE_RUNNING, guest()),
            (Action.REBOOT, None),
            (Action.ENSURE_STOPPED, None),
        ]
        sent: dict[str, list[str]] = {instance: [] for instance in instances}
        for action, spec in plan:
            for instance in instances:
                step = command(HOST, instance, action, spec)
                sent[instance].append(step.step_id)
                await send(nc, bus, step)
        results = await wait_outcomes(nc, bus, len(instances) * len(plan), timeout=20)
        await settled(nc, bus)
        assert all(o.ok for o in results), [o.error for o in results if not o.ok]
        for instance in instances:
            reported = [o.step_id for o in results if o.instance_id == instance]
            assert reported == sent[instance]
            calls = [name for name, target in probe.calls if target == instance]
            assert calls == ["define", "start", "stop", "define", "start", "reboot", "stop"]
            assert compute.states[instance] == PowerState.STOPPED
        assert 1 < probe.peak <= daemon.daemon.options.concurrency
    finally:
        await daemon.close()


async def test_observed_state_reports_list_the_instances(nc: Client, bus: HostBus) -> None:
    host, _, _ = simulated_host()
    reports: asyncio.Queue[hostwire.ObservedState] = asyncio.Queue()

    async def receive(msg: object) -> None:
        await reports.put(hostwire.decode_observed(msg.data))  # type: ignore[attr-defined]

    subscription = await nc.subscribe(bus.observed_subject(HOST), cb=receive)
    daemon = await Running(nc, host, bus).start()
    try:
        running, stopped = instance_id(), instance_id()
        await send(nc, bus, command(HOST, running, Action.ENSURE_RUNNING, guest()))
        await send(nc, bus, command(HOST, stopped, Action.ENSURE_RUNNING, guest()))
        await send(nc, bus, command(HOST, stopped, Action.ENSURE_STOPPED))
        await wait_outcomes(nc, bus, 3)
        wanted = {running: WireState.RUNNING, stopped: WireState.STOPPED}
        for _ in range(50):
            report = await asyncio.wait_for(reports.get(), 5)
            if report.instances == wanted:
                break
        else:
            raise AssertionError(f"last report: {report}")
        assert report.host_id == HOST
    finally:
        await daemon.close()
        await subscription.unsubscribe()


async def test_heartbeats_carry_the_instance_count(nc: Client) -> None:
    compute = SimulatedCompute(HOST)
    for name in ("i-a", "i-b"):
        compute.states[name] = PowerState.RUNNING
    bucket_name = f"test_hosts_{instance_id()[2:12]}"
    stop = asyncio.Event()

    async def count() -> int:
        return len(await compute.observed())

    js = nc.jetstream()
    task = asyncio.create_task(beat(js, HOST, stop, 0.1, count, bucket_name=bucket_name))
    try:
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                entry = await (await js.key_value(bucket_name)).get(HOST)
            except Exception:
                continue
            heartbeat = msgspec.json.decode(entry.value or b"", type=Heartbeat)
            assert heartbeat.instances == 2 and heartbeat.host_id == HOST
            break
        else:
            raise AssertionError("no heartbeat")
    finally:
        stop.set()
        await task
        await js.delete_key_value(bucket_name)


async def test_a_clean_stop_hands_back_what_has_not_started(nc: Client, bus: HostBus) -> None:
    host, probe, compute = simulated_host(probe_delay=0.3)
    first = await Running(nc, host, bus).start()
    instance = instance_id()
    steps = [command(HOST, instance, Action.ENSURE_RUNNING, guest())]
    steps += [command(HOST, instance, Action.ENSURE_STOPPED) for _ in range(3)]
    for step in steps:
        await send(nc, bus, step)
    await asyncio.wait_for(probe.called.wait(), 10)
    await first.close()
    done = len(await outcomes(nc, bus))
    assert 1 <= done < len(steps), "the started one finished, the rest were handed back"

    second = await Running(nc, host, bus).start()
    try:
        results = await wait_outcomes(nc, bus, len(steps))
        assert [o.step_id for o in results] == [s.step_id for s in steps]
        assert compute.states[instance] == PowerState.STOPPED
    finally:
        await second.close()
