"""Instance creates through the API, the scheduler, NATS and simulated host daemons.

Run: ``python -m tests.bench.compute [--mode closed|flat|both] [--scale 1.0] [--creates N]
[--processes 3|1]`` from the repository root: 500 creates by default, to stay within a
minute; ``--creates 10000`` is the issue's full size (several minutes).

Three processes by default, as the platform is deployed, on the machine's PostgreSQL and
NATS: this one holds the API on a real port (so the create path can be timed inside it)
and the clients; ``scloud worker`` holds projections, the host command dispatcher, the
outcome ingester, deadlines and host failures; ``tests.bench.processes.compute_fleet`` holds a
``SimulatedFleet`` of 1,000 hosts at scale 1 (one durable consumer each, heartbeats every
5 s). ``--processes 1`` runs all three in this one, for comparison. 50 tenants send
creates, 50 at once, in one of two modes:
- closed loop (the default, the way Rally measures Nova): each of the 50 creates one
  instance, reads it through the API (``GET /v1/instances/{id}`` every 0.1 s, or every
  tenth of the time waited if longer: the create's operation is finished when the create
  is decided, so it cannot be waited on for the boot) until it is ``running``, then
  creates the next. Creates/s to running, and request-to-running p50/p95 as the client
  sees it (and p95 of the ``Reached running`` event in the store, read by a follower);
- flat out: each of the 50 sends its creates back to back without waiting (mostly
  queueing once answers outrun the hosts' outcomes), then a steady 20 creates/s;
- in either mode, placement p95: the scheduler's ``place_batch`` in the live create path,
  and the whole create decision (cached fleet view, scheduler, claims), over 1,000 hosts,
  then over 10,000 (9,000 more registered straight into the store);
- baseline, same run, same 50 tenants and connections: creates of server groups (one
  aggregate, no placement, no host), so the ratio is what compute adds to a command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web
from nats.js.errors import NotFoundError

from api.app import build_app
from api.bootstrap import Platform, ensure_first_admin, open_platform, run_worker
from api.services import compute
from domain.compute.instance import Instance
from domain.compute.scheduler import place_batch
from domain.inventory.cluster import Cluster
from domain.inventory.host import Host
from domain.metadata import Actor, CommandContext
from gateways.bus import hostwire
from gateways.settings import Settings
from hostd.fleet import SimulatedFleet
from hostd.streams import durable_name
from projections.runner import wait_for_position
from tests.bench.common import database, nats_server, report, scratch_schema
from tests.bench.processes.api_server import (
    REPOSITORY,
    cpu_seconds,
    free_port,
    machine_ticks,
    scloud,
    server_process,
    terminate,
)
from tests.bench.processes.compute_fleet import FleetOrder

CONCURRENCY = 50
POLL_SECONDS = 0.1
"""A closed-loop client reads its instance this often, or after a tenth of the time it
has waited so far when that is longer: at most 10% late, and a slow pipeline is not
slowed further by ever more reads (a fixed 0.1 s made 160 reads a create at 16 s)."""
PACED_RATE = 20.0
"""Creates a second in the flat-out mode's steady phase: four times the goal of five."""
PACED_SECONDS = 10.0
ADMIN_PASSWORD = "bench-admin-password"
REACHED = "domain.compute.instance:Instance.Reached"
ENDED_IN_ERROR = {f"domain.compute.instance:Instance.{e}" for e in ("TimedOut", "Failed")}
MODES = {"closed": ("closed",), "flat": ("flat",), "both": ("closed", "flat")}
HEARTBEAT_SECONDS = 5.0
T = TypeVar("T")


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else 0.0


class Timings:
    """Durations (ms) of calls through a wrapped function."""

    def __init__(self) -> None:
        self.ms: list[float] = []

    def sync(self, function: Callable[..., T]) -> Callable[..., T]:
        def timed(*args: Any, **kwargs: Any) -> T:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.ms.append((time.perf_counter() - started) * 1000)

        return timed

    def coro(self, function: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        async def timed(*args: Any, **kwargs: Any) -> T:
            started = time.perf_counter()
            try:
                return await function(*args, **kwargs)
            finally:
                self.ms.append((time.perf_counter() - started) * 1000)

        return timed


class Running:
    """Follows the store: when each instance reached ``running`` (or ended in error)."""

    def __init__(self, platform: Platform) -> None:
        self.store = platform.store
        self.at: dict[str, float] = {}
        self.failed: set[str] = set()
        self.changed = asyncio.Event()

    async def follow(self, stop: asyncio.Event) -> None:
        position = await self.store.last_position()
        async with self.store.appended() as appended:
            while not stop.is_set():
                appended.clear()
                while batch := await self.store.read_all(after=position, limit=5000):
                    now = time.perf_counter()
                    for event in batch:
                        if event.topic == REACHED and b'"running"' in event.state:
                            self.at.setdefault(event.originator_id, now)
                        elif event.topic in ENDED_IN_ERROR:  # a build deadline passed
                            self.failed.add(event.originator_id)
                    position = batch[-1].position
                    self.changed.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(appended.wait(), 0.5)

    async def until(self, ids: list[str], seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while not all(i in self.at or i in self.failed for i in ids):
                self.changed.clear()
                await self.changed.wait()


async def post(session: aiohttp.ClientSession, url: str, token: str, body: Any) -> Any:
    async with session.post(url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        answer = await r.json()
        if r.status != 202:
            raise RuntimeError(f"{url}: {r.status} {answer}")
        return answer


async def register_hosts(platform: Platform, cluster: Cluster, count: int, tag: str) -> list[str]:
    """Hosts straight into the store, 500 to an append: registering is not what is measured."""
    ids: list[str] = []
    capacity = {"vcpus": 64, "memory_mb": 256 * 1024, "disk_gb": 4000}
    for start in range(0, count, 500):
        hosts = [
            Host.register(cluster, f"{tag}-{n:05d}.bench", capacity)
            for n in range(start, min(count, start + 500))
        ]
        context = CommandContext(actor=Actor.system("bench"), command_id=secrets.token_hex(8))
        await platform.repository.save(context, *hosts)
        ids += [host.id for host in hosts]
    return ids


class Load:
    """What every round sends with: the session, the 50 tenants, the create, the clocks."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        tokens: list[str],
        body: dict[str, str],
        running: Running,
        poll: float = POLL_SECONDS,
    ) -> None:
        self.session, self.tokens, self.body, self.running = session, tokens, body, running
        self.poll, self.reads = poll, 0
        self.placement, self.decisions = Timings(), Timings()
        self.processes: dict[str, int] = {"API and clients": os.getpid()}
        """The run's processes by what they hold: their CPU time is reported."""

    def cpu(self) -> tuple[dict[str, float], tuple[int, int]]:
        """Each process's CPU seconds so far, and the machine's (busy, total) ticks."""
        return {name: cpu_seconds(pid) for name, pid in self.processes.items()}, machine_ticks()

    def cpu_figures(
        self, label: str, before: tuple[dict[str, float], tuple[int, int]], creates: int
    ) -> dict[str, float]:
        (was, (busy, total)), (now, (busy_now, total_now)) = before, self.cpu()
        figures = {
            f"{label}CPU ms per create, {name}": (now[name] - was[name]) * 1000 / creates
            for name in self.processes
        }
        figures[f"{label}machine CPU busy %"] = 100 * (busy_now - busy) / (total_now - total)
        return figures

    async def create(self, token: str, name: str) -> str:
        answer = await post(self.session, "/v1/instances", token, {**self.body, "name": name})
        return str(answer["instance_ids"][0])

    async def until_running(self, token: str, instance_id: str, sent: float) -> bool:
        """Read the instance through the API until it is running (True) or in error."""
        headers = {"Authorization": f"Bearer {token}"}
        async with asyncio.timeout(120):
            while True:
                await asyncio.sleep(max(self.poll, (time.perf_counter() - sent) / 10))
                self.reads += 1
                async with self.session.get(f"/v1/instances/{instance_id}", headers=headers) as r:
                    if r.status == 404:  # not projected yet
                        continue
                    view = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"{instance_id}: {r.status} {view}")
                if view["status"] in ("running", "error"):
                    return bool(view["status"] == "running")

    def placement_figures(self, label: str, hosts: int, at_once: str) -> dict[str, float]:
        figures = {
            f"{label}placement p95 ms over {hosts} hosts": p(self.placement.ms, 0.95),
            f"{label}create decision p95 ms over {hosts} hosts, {at_once}": p(
                self.decisions.ms, 0.95
            ),
        }
        self.forget()
        return figures

    def forget(self) -> None:
        self.placement.ms.clear()
        self.decisions.ms.clear()


async def closed_loop(load: Load, per: int, hosts: int) -> dict[str, float]:
    """Each of the 50 creates one instance, waits until it runs, then creates the next."""
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    answered: list[float] = []
    failed: list[str] = []

    async def one_by_one(token: str, n: int) -> None:
        for k in range(per):
            at = time.perf_counter()
            instance_id = await load.create(token, f"c-{n}-{k}")
            answered.append((time.perf_counter() - at) * 1000)
            if await load.until_running(token, instance_id, at):
                sent[instance_id], seen[instance_id] = at, time.perf_counter()
            else:
                failed.append(instance_id)

    started, cpu = time.perf_counter(), load.cpu()
    await asyncio.gather(*(one_by_one(t, n) for n, t in enumerate(load.tokens)))
    elapsed = time.perf_counter() - started
    cpu_figures = load.cpu_figures("closed loop: ", cpu, len(answered))
    await load.running.until(list(sent), 30)
    to_running = [(seen[i] - at) * 1000 for i, at in sent.items()]
    to_event = [(load.running.at[i] - at) * 1000 for i, at in sent.items()]
    return {
        "closed loop: reads every ms (at least)": load.poll * 1000,
        "closed loop: reads per create": load.reads / len(sent),
        "closed loop: creates": float(len(sent) + len(failed)),
        "closed loop: creates ended in error": float(len(failed)),
        "closed loop: creates/s (each to running)": len(sent) / elapsed,
        "closed loop: create answered (202) p95 ms": p(answered, 0.95),
        "closed loop: request to running p50 ms": statistics.median(to_running),
        "closed loop: request to running p95 ms": p(to_running, 0.95),
        "closed loop: request to running event p95 ms": p(to_event, 0.95),
        "closed loop: create decisions per create": len(load.decisions.ms) / len(answered),
        **cpu_figures,
        **load.placement_figures("closed loop: ", hosts, "up to 50 at once"),
    }


async def flat_out(load: Load, per: int, hosts: int) -> dict[str, float]:
    """Each of the 50 sends its creates back to back; then a steady rate for latency."""
    sent: dict[str, float] = {}

    async def back_to_back(token: str, n: int) -> None:
        for k in range(per):
            at = time.perf_counter()
            sent[await load.create(token, f"f-{n}-{k}")] = at

    started = time.perf_counter()
    await asyncio.gather(*(back_to_back(t, n) for n, t in enumerate(load.tokens)))
    answered = time.perf_counter() - started
    await load.running.until(list(sent), max(300.0, len(sent) / 5))  # 5/s: the goal
    all_running = time.perf_counter() - started
    ran = {i: at for i, at in sent.items() if i in load.running.at}
    to_running = [(load.running.at[i] - at) * 1000 for i, at in ran.items()]
    figures = {
        "flat out: creates": float(len(sent)),
        "flat out: creates ended in error": float(len(sent) - len(ran)),
        "flat out: creates/s (202 answered)": len(sent) / answered,
        "flat out: creates/s (to all running)": len(ran) / all_running,
        "flat out: request to running p50 ms": statistics.median(to_running),
        "flat out: request to running p95 ms": p(to_running, 0.95),
        **load.placement_figures("flat out: ", hosts, "50 at once"),
    }

    # The same creates at a steady rate the pipeline keeps up with: latency, not queue.
    paced: dict[str, float] = {}
    gate = asyncio.Semaphore(CONCURRENCY)

    async def paced_one(n: int, due: float) -> None:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        async with gate:
            at = time.perf_counter()
            paced[await load.create(load.tokens[n % len(load.tokens)], "p")] = at

    start = time.perf_counter()
    count = max(10, round(PACED_SECONDS * PACED_RATE))
    await asyncio.gather(*(paced_one(n, start + n / PACED_RATE) for n in range(count)))
    await load.running.until(list(paced), 120)
    at_rate = [(load.running.at[i] - at) * 1000 for i, at in paced.items() if i in load.running.at]
    label = f"open loop at {PACED_RATE:.0f} creates/s: request to running"
    load.forget()  # the paced round's placements are not reported
    return {
        **figures,
        f"{label} p50 ms": statistics.median(at_rate),
        f"{label} p95 ms": p(at_rate, 0.95),
    }


@dataclass(frozen=True)
class Plan:
    hosts: int
    creates: int
    far_hosts: int
    """Hosts added for the second placement figure."""
    modes: tuple[str, ...]
    poll: float
    """Seconds (at least) between a closed-loop client's reads of its instance."""
    processes: int = 3
    """3: API and clients, worker, hosts each in a process; 1: all in this one."""


async def bench(plan: Plan) -> dict[str, float]:
    # A SIGTERM cancels the run, so that its hosts' consumers and queues leave the shared
    # NATS and its schema the database, as at the end of a run; a second one is ignored
    # while that is done.
    task, loop = asyncio.current_task(), asyncio.get_running_loop()
    assert task is not None

    def terminated() -> None:
        loop.add_signal_handler(signal.SIGTERM, lambda: None)
        task.cancel()

    loop.add_signal_handler(signal.SIGTERM, terminated)
    async with database() as db, nats_server() as nats_url:
        async with scratch_schema(db, "bench_compute") as schema:
            settings = Settings(
                database_url=db,
                nats_url=nats_url,
                schema=schema,
                state_dir=Path(tempfile.mkdtemp()),
                admin_password=ADMIN_PASSWORD,
                stream_name=f"B_{schema.upper()}",
                subject_prefix=schema,
                token_key=secrets.token_hex(32),
                api_port=free_port(),
            )
            async with open_platform(settings, db, nats_url) as platform:
                return await _measure(platform, plan)


async def _measure(platform: Platform, plan: Plan) -> dict[str, float]:
    settings, host_count = platform.settings, plan.hosts
    await ensure_first_admin(platform)
    await platform.identity.catch_up(platform.store)
    stop = asyncio.Event()
    parts = contextlib.AsyncExitStack()
    tasks: list[asyncio.Task[None]] = []
    processes: dict[str, int] = {}
    if plan.processes == 1:
        tasks.append(asyncio.create_task(run_worker(platform, stop, relay=False)))
    else:
        processes["worker"] = await parts.enter_async_context(worker_process(platform))
    tasks.append(asyncio.create_task(platform.identity.follow(platform.store, stop)))
    runner = web.AppRunner(build_app(platform), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.api_port).start()
    running = Running(platform)
    follower = asyncio.create_task(running.follow(stop))
    host_ids: list[str] = []
    far_instances: list[str] = []
    connector = aiohttp.TCPConnector(limit=CONCURRENCY * 2)
    try:
        base = f"http://127.0.0.1:{settings.api_port}"
        async with aiohttp.ClientSession(base, connector=connector) as session:
            async with session.post(
                "/v1/auth/login", json={"email": settings.admin_email, "password": ADMIN_PASSWORD}
            ) as r:
                admin = (await r.json())["token"]
            region, cluster_id, body = await catalogue(session, admin)
            await projected(platform)  # the cluster's document, read by the next step
            cluster = await platform.repository.get(cluster_id, Cluster)
            host_ids = await register_hosts(platform, cluster, host_count, "near")

            started = time.perf_counter()
            nats_url = settings.nats_url or ""
            if plan.processes == 1:
                fleet = SimulatedFleet(
                    host_count, nats_url, host_ids=host_ids, heartbeat_every=HEARTBEAT_SECONDS
                )
                await fleet.start()
                parts.push_async_callback(fleet.close)
            else:
                processes["hosts"] = await parts.enter_async_context(
                    hosts_process(nats_url, host_ids)
                )
            print(f"  fleet of {host_count} hosts up in {time.perf_counter() - started:.1f} s")
            await platform.host_health.start()
            async with asyncio.timeout(60):
                while not all(platform.host_health.health(h)[0] for h in host_ids):
                    await asyncio.sleep(0.2)

            tokens = await tenants(session, admin, region)
            load = Load(session, tokens, body, running, plan.poll)
            load.processes |= processes
            # The create path calls these by their names in that module: timed there.
            setattr(compute, "place_batch", load.placement.sync(place_batch))  # noqa: B010
            compute.create_instances = load.decisions.coro(compute.create_instances)  # type: ignore[assignment]
            per = max(1, plan.creates // CONCURRENCY)

            # Warm-up: the fleet view's first load, connections, caches; all left running.
            started = time.perf_counter()
            await closed_loop(Load(session, tokens[:5], body, running, plan.poll), 2, host_count)
            load.forget()
            print(f"  warm-up: {time.perf_counter() - started:.0f} s")

            figures: dict[str, float] = {
                "hosts": float(host_count),
                "processes": float(plan.processes),
            }
            for mode in plan.modes:
                started = time.perf_counter()
                round_ = closed_loop if mode == "closed" else flat_out
                done = await round_(load, per, host_count)
                figures.update(done)
                # Long runs: this round's figures now, in case the run does not end well.
                print(f"  {mode} round: {time.perf_counter() - started:.0f} s {json.dumps(done)}")

            # Baseline: one-aggregate commands from the same tenants and connections.
            async def groups(token: str, n: int) -> None:
                for k in range(per):
                    await post(
                        session,
                        "/v1/server-groups",
                        token,
                        {"name": f"g-{n}-{k}", "policy": "anti-affinity"},
                    )

            started = time.perf_counter()
            await asyncio.gather(*(groups(t, n) for n, t in enumerate(load.tokens)))
            elapsed = time.perf_counter() - started
            figures["baseline: server group creates/s"] = per * len(load.tokens) / elapsed

            # 9,000 more hosts (healthy by a beat each), then a smaller round of creates.
            if plan.far_hosts:
                started = time.perf_counter()
                far = await register_hosts(platform, cluster, plan.far_hosts, "far")
                await beat_once(platform, far)
                # The fleet view loads the new hosts once, in the first create after them.
                # (Not waited for: the far hosts have no daemon, so it may never run.)
                far_instances.append(await load.create(tokens[0], "far-first"))
                load.forget()

                async def few(token: str, n: int) -> None:
                    for k in range(max(10, per // 2)):
                        far_instances.append(await load.create(token, f"far-{n}-{k}"))

                await asyncio.gather(*(few(t, n) for n, t in enumerate(load.tokens[:4])))
                total = host_count + len(far)
                figures.update(load.placement_figures("", total, "4 at once"))
                print(f"  round over {total} hosts: {time.perf_counter() - started:.0f} s")
            return figures
    finally:
        stop.set()
        await parts.aclose()
        follower.cancel()
        await runner.cleanup()
        await asyncio.gather(*tasks, return_exceptions=True)
        await leave_nats(platform, host_ids, far_instances)


async def leave_nats(platform: Platform, host_ids: list[str], far_instances: list[str]) -> None:
    """What the run left in the shared NATS goes: its hosts' consumers, queued commands and
    outcomes, its ingester, its event stream."""
    js = platform.js
    for host_id in host_ids:
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(hostwire.COMMANDS_STREAM, durable_name(host_id))
        with contextlib.suppress(NotFoundError):
            subject = hostwire.outcome_subject(host_id)
            await js.purge_stream(hostwire.OUTCOMES_STREAM, subject=subject)
    with contextlib.suppress(NotFoundError):
        await js.delete_consumer(
            hostwire.OUTCOMES_STREAM, f"scloud-outcomes-{platform.settings.schema}"
        )
    with contextlib.suppress(NotFoundError):
        await js.delete_stream(platform.settings.stream_name)
    # A far host has no daemon: the boots placed there wait in the work queue for a day.
    for instance_id in far_instances:
        far_host = (await platform.repository.get(instance_id, Instance)).host_id
        if far_host is not None and far_host not in host_ids:
            subject = hostwire.command_subject(far_host)
            await js.purge_stream(hostwire.COMMANDS_STREAM, subject=subject)


async def projected(platform: Platform) -> None:
    """Until the documents hold everything appended so far (the worker may be starting)."""
    position = await platform.store.last_position()
    schema = platform.settings.schema
    if not await wait_for_position(platform.store.pool, schema, "resource_documents", position, 60):
        raise RuntimeError(f"the worker did not project position {position} within 60 s")


@contextlib.asynccontextmanager
async def worker_process(platform: Platform) -> AsyncIterator[int]:
    """``scloud worker`` on the run's schema, as deployed (with the relay to NATS)."""
    settings = platform.settings
    env = {
        "SCLOUD_DATABASE_URL": settings.database_url or "",
        "SCLOUD_NATS_URL": settings.nats_url or "",
        "SCLOUD_SCHEMA": settings.schema,
        "SCLOUD_STATE_DIR": str(settings.state_dir),
        "SCLOUD_TOKEN_KEY": settings.token_key or "",
        "SCLOUD_STREAM": settings.stream_name,
        "SCLOUD_SUBJECT_PREFIX": settings.subject_prefix,
    }
    async with server_process("worker", scloud("worker"), settings.state_dir, env=env) as worker:
        yield worker.pid


@contextlib.asynccontextmanager
async def hosts_process(nats_url: str, host_ids: list[str]) -> AsyncIterator[int]:
    """The simulated fleet in its own process, until every daemon pulls its commands."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.bench.processes.compute_fleet",
        cwd=REPOSITORY,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        order = FleetOrder(nats_url, host_ids, HEARTBEAT_SECONDS)
        process.stdin.write(msgspec.json.encode(order))
        await process.stdin.drain()
        process.stdin.close()
        async with asyncio.timeout(120):
            line = await process.stdout.readline()
        if line.strip() != b"ready":
            raise RuntimeError(f"the fleet process did not start (exit {process.returncode})")
        yield process.pid
    finally:
        await terminate(process, 60)


async def catalogue(session: aiohttp.ClientSession, admin: str) -> tuple[str, str, dict[str, str]]:
    """A region, a cluster, a flavor and an image: the region, the cluster and a create."""
    region = (await post(session, "/v1/admin/regions", admin, {"name": "bench"}))["resource_id"]
    cluster = {
        "region_id": region,
        "name": "c",
        "architecture": "x86_64",
        "kind": "compute",
        "cpu_overcommit": 4.0,
    }
    cluster_id = (await post(session, "/v1/admin/clusters", admin, cluster))["resource_id"]
    flavor = {"name": "m1", "vcpus": 2, "memory_mb": 2048, "disk": {"min_gb": 10, "max_gb": 40}}
    flavor_id = (await post(session, "/v1/admin/flavors", admin, flavor))["resource_id"]
    pool = {"region_id": region, "name": "p", "backend": "qcow2", "location": "/i"}
    pool_id = (await post(session, "/v1/admin/image-pools", admin, pool))["resource_id"]
    image = {"name": "debian", "pool_id": pool_id, "location": "/i/debian.qcow2"}
    image_id = (await post(session, "/v1/admin/images", admin, image))["resource_id"]
    return region, cluster_id, {"region_id": region, "flavor_id": flavor_id, "image_id": image_id}


async def tenants(session: aiohttp.ClientSession, admin: str, region: str) -> list[str]:
    """50 tenants, each signed in, with room for as many instances as the bench makes."""

    async def one(n: int) -> str:
        email = f"owner{n}-{secrets.token_hex(3)}@bench.example"
        answer = await post(
            session,
            "/v1/admin/tenants",
            admin,
            {"name": f"bench-{n}", "owner_email": email, "owner_password": "bench-password-1"},
        )
        tenant_id = answer["resource_id"]
        limits = {"instances": 100_000, "vcpus": 1_000_000, "memory_mb": 10**9}
        async with session.put(
            f"/v1/admin/tenants/{tenant_id}/quotas",
            json={"region": region, "limits": limits},
            headers={"Authorization": f"Bearer {admin}"},
        ) as r:
            assert r.status == 202, await r.text()
        await asyncio.sleep(0.3)  # the identity cache learns the new owner
        for _ in range(50):
            async with session.post(
                "/v1/auth/login", json={"email": email, "password": "bench-password-1"}
            ) as r:
                if r.status == 200:
                    return str((await r.json())["token"])
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{email} cannot sign in")

    return list(await asyncio.gather(*(one(n) for n in range(CONCURRENCY))))


async def beat_once(platform: Platform, host_ids: list[str]) -> None:
    import msgspec

    from hostd.heartbeat import bucket, measure

    kv = await bucket(platform.js)
    base = measure("")
    for start in range(0, len(host_ids), 500):
        await asyncio.gather(
            *(
                kv.put(h, msgspec.json.encode(msgspec.structs.replace(base, host_id=h)))
                for h in host_ids[start : start + 500]
            )
        )
    async with asyncio.timeout(30):
        while not all(platform.host_health.health(h)[0] for h in host_ids):
            await asyncio.sleep(0.2)


def main() -> None:
    from argon2 import PasswordHasher

    from gateways import passwords

    # Fifty sign-ups are setup, not what is measured: argon2 at its cheapest here.
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=sorted(MODES),
        default="closed",
        help="closed: each client waits for running before its next create (like Rally); "
        "flat: back to back, then a steady 20/s; both: one after the other",
    )
    parser.add_argument(
        "--poll", type=float, default=POLL_SECONDS, help="closed loop: seconds between reads"
    )
    parser.add_argument(
        "--processes",
        type=int,
        choices=(1, 3),
        default=3,
        help="3: API and clients, scloud worker, simulated hosts apart; 1: all in one",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 1,000 hosts")
    parser.add_argument("--creates", type=int, default=None, help="default: 500 x scale")
    parser.add_argument(
        "--far-hosts", type=int, default=None, help="hosts added for the second placement figure"
    )
    args = parser.parse_args()
    hosts = max(2, round(1000 * args.scale))
    creates = args.creates or max(CONCURRENCY, round(500 * args.scale))
    far = args.far_hosts if args.far_hosts is not None else hosts * 9
    plan = Plan(hosts, creates, far, MODES[args.mode], args.poll, args.processes)
    figures = asyncio.run(bench(plan))
    baseline = figures["baseline: server group creates/s"]
    ratios = {
        f"{rate.split(':')[0]} creates/s vs server-group creates/s": figures[rate] / baseline
        for rate in (
            "closed loop: creates/s (each to running)",
            "flat out: creates/s (to all running)",
        )
        if rate in figures
    }
    report("compute: creates through API, scheduler, NATS and simulated hosts", figures, ratios)


if __name__ == "__main__":
    main()
