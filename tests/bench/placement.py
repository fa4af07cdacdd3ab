"""Scheduler placement latency over 1,000 and 10,000 hosts, in one process, no I/O.

Run: ``python -m tests.bench.placement [--scale 1.0]`` from the repository root.

The fleet is mixed as a real one would be: two regions, several clusters with different
overcommit, a few hosts down, disabled or in maintenance, GPU hosts, labels, live load,
twenty instances a host (some preemptible) and server groups with members. The baseline
is one bare pass over the host list, measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import msgspec

from domain.compute.scheduler import (
    Decision,
    GpuDevice,
    GpuRequest,
    GroupPolicy,
    HostView,
    LiveLoad,
    PlacedInstance,
    PlacementRequest,
    Resources,
    ServerGroup,
    Strategy,
    limits,
    place,
    place_batch,
)
from tests.bench.common import report, stopwatch

FLAVORS = [(1, 1024, 20), (2, 4096, 40), (4, 8192, 80), (8, 32768, 160), (16, 65536, 320)]
GOAL_MS = {1000: 50.0, 10000: 250.0}


def fleet(count: int, rng: random.Random) -> list[HostView]:
    hosts = []
    for n in range(count):
        cluster = n % 8
        gpus = tuple(
            GpuDevice(f"0000:{g + 59:02x}:00.0", "A100") for g in range(4 if n % 20 == 5 else 0)
        )
        instances = tuple(
            PlacedInstance(
                id=f"i-{n:05d}-{k:02d}",
                tenant_id=f"tnt-{rng.randrange(50)}",
                vcpus=(flavor := rng.choice(FLAVORS[:3]))[0],
                memory_mb=flavor[1],
                disk_gb=flavor[2],
                preemptible=rng.random() < 0.2,
            )
            for k in range(20)
        )
        used = Resources(
            sum(i.vcpus for i in instances),
            sum(i.memory_mb for i in instances),
            sum(i.disk_gb for i in instances),
        )
        hosts.append(
            HostView(
                id=f"hst-{n:05d}",
                region_id="rgn-1" if n % 10 else "rgn-2",
                cluster_id=f"cls-{cluster}",
                architecture="aarch64" if cluster == 7 else "x86_64",
                enabled=n % 97 != 0,
                healthy=n % 89 != 0,
                maintenance=n % 101 == 0,
                capacity=Resources(64, 262144, 4000),
                used=used,
                cpu_overcommit=(1.0, 2.0, 4.0, 4.0)[cluster % 4],
                memory_overcommit=(1.0, 1.0, 1.5, 1.2)[cluster % 4],
                free_gpus=gpus,
                load=LiveLoad(rng.random() * 2, rng.randrange(0, 262144)),
                labels={"disk": "nvme" if n % 3 else "hdd", "rack": f"r{n % 40}"},
                instances=instances,
            )
        )
    return hosts


def groups(hosts: list[HostView], rng: random.Random) -> dict[str, ServerGroup]:
    policies = list(GroupPolicy)
    found = {}
    for g in range(40):
        members = {f"i-g{g}-{m}": rng.choice(hosts).id for m in range(rng.randrange(0, 30))}
        policy = policies[g % 4]
        if policy is GroupPolicy.AFFINITY and members:
            only = next(iter(members.values()))
            members = dict.fromkeys(members, only)
        found[f"sg-{g}"] = ServerGroup(id=f"sg-{g}", policy=policy, members=members)
    return found


def request(n: int, rng: random.Random) -> PlacementRequest:
    vcpus, memory_mb, disk_gb = rng.choice(FLAVORS)
    roll = rng.random()
    return PlacementRequest(
        instance_id=f"i-new-{n}",
        tenant_id=f"tnt-{rng.randrange(50)}",
        region_id="rgn-1",
        cluster_id=f"cls-{rng.randrange(7)}" if roll < 0.1 else None,
        architecture="x86_64",
        vcpus=vcpus,
        memory_mb=memory_mb,
        disk_gb=disk_gb,
        gpus=GpuRequest(1, "A100") if roll > 0.95 else None,
        server_group_id=f"sg-{rng.randrange(40)}" if 0.1 <= roll < 0.3 else None,
        preemptible=rng.random() < 0.1,
        strategy=Strategy.PACK if rng.random() < 0.3 else Strategy.SPREAD,
        required_labels={"disk": "nvme"} if rng.random() < 0.2 else {},
    )


def quantiles_ms(samples: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1e3, cuts[94] * 1e3, cuts[98] * 1e3


def timed(
    asks: list[PlacementRequest], hosts: list[HostView], view: dict[str, ServerGroup]
) -> tuple[list[float], list[float], list[Decision]]:
    """Each placement's wall-clock and CPU seconds (the machine may be shared), and decisions."""
    wall, cpu, decisions = [], [], []
    for ask in asks:
        started, started_cpu = time.perf_counter(), time.thread_time()
        decisions.append(place(ask, hosts, view))
        cpu.append(time.thread_time() - started_cpu)
        wall.append(time.perf_counter() - started)
    return wall, cpu, decisions


def bare_pass_ms(hosts: list[HostView], rounds: int = 20, passes: int = 10) -> float:
    """CPU time of one loop over the hosts reading one field: the floor of any placement."""
    best = float("inf")
    for _ in range(rounds):
        started = time.thread_time()
        for _ in range(passes):
            for host in hosts:
                host.used  # noqa: B018
        best = min(best, (time.thread_time() - started) / passes)
    return best * 1e3


def full(hosts: list[HostView]) -> list[HostView]:
    """The same fleet with every host claimed to its limit: regular creates must preempt."""
    return [msgspec.structs.replace(host, used=limits(host)) for host in hosts]


def measure(size: int, placements: int, rng: random.Random) -> tuple[dict[str, float], float]:
    hosts = fleet(size, rng)
    view = groups(hosts, rng)
    asks = [request(n, rng) for n in range(placements)]
    timed(asks[:5], hosts, view)  # warm up
    wall, cpu_placing, decisions = timed(asks, hosts, view)
    p50, p95, p99 = quantiles_ms(wall)
    figures = {
        f"place_p50_ms_{size}_hosts": p50,
        f"place_p95_ms_{size}_hosts": p95,
        f"place_p99_ms_{size}_hosts": p99,
        f"place_cpu_p50_ms_{size}_hosts": quantiles_ms(cpu_placing)[0],
        f"place_cpu_p95_ms_{size}_hosts": quantiles_ms(cpu_placing)[1],
        f"placed_share_pct_{size}_hosts": 100.0 * sum(d.placed for d in decisions) / len(asks),
        f"decision_record_bytes_{size}_hosts": statistics.mean(
            len(msgspec.json.encode(d)) for d in decisions
        ),
        f"bare_pass_cpu_us_{size}_hosts": bare_pass_ms(hosts) * 1e3,
    }
    regular = msgspec.structs.replace(asks[0], preemptible=False, server_group_id=None)
    batch_size = max(10, placements // 2)
    with stopwatch() as elapsed:
        batch = place_batch(regular, [f"i-b{n}" for n in range(batch_size)], hosts, view)
    figures[f"batch_placements_per_s_{size}_hosts"] = batch_size / elapsed[0]
    assert all(d.placed for d in batch.decisions)

    packed = full(hosts)
    wanted = msgspec.structs.replace(
        regular, vcpus=4, memory_mb=8192, disk_gb=0, gpus=None, required_labels={}
    )
    wall, cpu, decisions = timed([wanted] * max(5, placements // 10), packed, view)
    plan = decisions[0].preemption
    assert plan is not None and not decisions[0].placed
    figures[f"full_fleet_preemption_p95_ms_{size}_hosts"] = quantiles_ms(wall)[1]
    figures[f"full_fleet_preemption_cpu_p95_ms_{size}_hosts"] = quantiles_ms(cpu)[1]
    figures[f"full_fleet_preemption_victims_{size}_hosts"] = float(len(plan.victims))
    return figures, quantiles_ms(cpu_placing)[1]


def main(scale: float) -> None:
    rng = random.Random(20260101)
    figures: dict[str, float] = {"load_average_1m": os.getloadavg()[0]}
    ratios: dict[str, float] = {}
    for size, placements in ((1000, int(400 * scale)), (10000, int(100 * scale))):
        found, cpu_p95 = measure(size, max(placements, 20), rng)
        figures.update(found)
        baseline = found[f"bare_pass_cpu_us_{size}_hosts"] / 1e3
        ratios[f"cpu_p95_vs_bare_pass_{size}_hosts"] = cpu_p95 / baseline
        ratios[f"p95_vs_goal_{size}_hosts"] = found[f"place_p95_ms_{size}_hosts"] / GOAL_MS[size]
    ratios["cpu_p95_10000_vs_1000_hosts"] = (
        figures["place_cpu_p95_ms_10000_hosts"] / figures["place_cpu_p95_ms_1000_hosts"]
    )
    figures["load_average_1m_after"] = os.getloadavg()[0]
    report("scheduler placement (pure Python, one process, no I/O)", figures, ratios)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    main(parser.parse_args().scale)
