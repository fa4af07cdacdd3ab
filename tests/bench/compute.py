"""Instance creates through the API, the scheduler, NATS and simulated host daemons.

Run: ``python -m tests.bench.compute [--scale 1.0] [--creates N]`` from the repository root.

One process holds the platform (API on a real port, projections, the host command
dispatcher, the outcome ingester, deadlines, host failures) and a ``SimulatedFleet`` of
1,000 hosts at scale 1 (one durable consumer each, heartbeats every 5 s), on the machine's
PostgreSQL and NATS. 50 tenants each send creates one after another, 50 at once:
- creates/s (202 answers), and request-to-running p50/p95: from sending the request to
  the instance's ``Reached running`` event in the store, read by a follower of the store;
  as fast as 50 clients go (mostly queueing once answers outrun the hosts' outcomes), then
  at a steady 20 creates/s;
- placement p95: the scheduler's ``place_batch`` in the live create path, and the whole
  create decision (cached fleet view, scheduler, claims), over 1,000 hosts and then over
  10,000 (9,000 more registered straight into the store);
- baseline, same run, same 50 tenants and connections: creates of server groups (one
  aggregate, no placement, no host), so the ratio is what compute adds to a command.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from aiohttp import web
from nats.js.errors import NotFoundError

from api.app import build_app
from api.bootstrap import Platform, ensure_first_admin, open_platform, run_worker
from api.services import compute
from domain.compute.scheduler import place_batch
from domain.inventory.cluster import Cluster
from domain.inventory.host import Host
from domain.metadata import Actor, CommandContext
from gateways.bus import hostwire
from gateways.settings import Settings
from hostd.fleet import SimulatedFleet
from hostd.streams import durable_name
from tests.bench.api_server import free_port
from tests.bench.common import database, nats_server, report, scratch_schema

CONCURRENCY = 50
PACED_RATE = 20.0
"""Creates a second in the steady phase: four times the goal of five."""
PACED_SECONDS = 10.0
ADMIN_PASSWORD = "bench-admin-password"
REACHED = "domain.compute.instance:Instance.Reached"
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
    """Follows the store: when each instance reached ``running``."""

    def __init__(self, platform: Platform) -> None:
        self.store = platform.store
        self.at: dict[str, float] = {}
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
                    position = batch[-1].position
                    self.changed.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(appended.wait(), 0.5)

    async def until(self, ids: list[str], seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while not all(i in self.at for i in ids):
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


async def bench(hosts: int, creates: int, far_hosts: int) -> tuple[dict[str, float], float]:
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
                return await _measure(platform, hosts, creates, far_hosts)


async def _measure(
    platform: Platform, host_count: int, creates: int, far_hosts: int
) -> tuple[dict[str, float], float]:
    settings = platform.settings
    await ensure_first_admin(platform)
    await platform.identity.catch_up(platform.store)
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(platform, stop, relay=False))
    identity = asyncio.create_task(platform.identity.follow(platform.store, stop))
    runner = web.AppRunner(build_app(platform), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.api_port).start()
    base = f"http://127.0.0.1:{settings.api_port}"
    running = Running(platform)
    follower = asyncio.create_task(running.follow(stop))
    placement, decisions = Timings(), Timings()
    # The create path calls the scheduler by its name in that module: timed there.
    setattr(compute, "place_batch", placement.sync(place_batch))  # noqa: B010
    fleet: SimulatedFleet | None = None
    host_ids: list[str] = []
    connector = aiohttp.TCPConnector(limit=CONCURRENCY)
    try:
        async with aiohttp.ClientSession(base, connector=connector) as session:
            async with session.post(
                "/v1/auth/login", json={"email": settings.admin_email, "password": ADMIN_PASSWORD}
            ) as r:
                admin = (await r.json())["token"]
            region = (await post(session, "/v1/admin/regions", admin, {"name": "bench"}))[
                "resource_id"
            ]
            cluster_id = (
                await post(
                    session,
                    "/v1/admin/clusters",
                    admin,
                    {
                        "region_id": region,
                        "name": "c",
                        "architecture": "x86_64",
                        "kind": "compute",
                        "cpu_overcommit": 4.0,
                    },
                )
            )["resource_id"]
            flavor = (
                await post(
                    session,
                    "/v1/admin/flavors",
                    admin,
                    {
                        "name": "m1",
                        "vcpus": 2,
                        "memory_mb": 2048,
                        "disk": {"min_gb": 10, "max_gb": 40},
                    },
                )
            )["resource_id"]
            pool = (
                await post(
                    session,
                    "/v1/admin/image-pools",
                    admin,
                    {"region_id": region, "name": "p", "backend": "qcow2", "location": "/i"},
                )
            )["resource_id"]
            image = (
                await post(
                    session,
                    "/v1/admin/images",
                    admin,
                    {"name": "debian", "pool_id": pool, "location": "/i/debian.qcow2"},
                )
            )["resource_id"]
            await asyncio.sleep(0.5)  # the cluster's document, read by the next step
            cluster = await platform.repository.get(cluster_id, Cluster)
            host_ids = await register_hosts(platform, cluster, host_count, "near")

            started = time.perf_counter()
            nats_url = settings.nats_url or ""
            fleet = SimulatedFleet(host_count, nats_url, host_ids=host_ids, heartbeat_every=5.0)
            await fleet.start()
            print(f"  fleet of {host_count} hosts up in {time.perf_counter() - started:.1f} s")
            await platform.host_health.start()
            async with asyncio.timeout(60):
                while not all(platform.host_health.health(h)[0] for h in host_ids):
                    await asyncio.sleep(0.2)

            tokens = await tenants(session, admin, region)
            per = max(1, creates // CONCURRENCY)
            body = {"region_id": region, "flavor_id": flavor, "image_id": image}

            async def create_all(token: str, n: int, sent: dict[str, float]) -> None:
                for k in range(per):
                    at = time.perf_counter()
                    answer = await post(
                        session, "/v1/instances", token, {**body, "name": f"vm-{n}-{k}"}
                    )
                    sent[answer["instance_ids"][0]] = at

            # Warm-up: the fleet view's first load, connections, JIT-less caches.
            warm: dict[str, float] = {}
            await asyncio.gather(*(create_all(t, n, warm) for n, t in enumerate(tokens[:5])))
            placement.ms.clear()
            compute.create_instances = decisions.coro(compute.create_instances)  # type: ignore[assignment]

            sent: dict[str, float] = {}
            started = time.perf_counter()
            await asyncio.gather(*(create_all(t, n, sent) for n, t in enumerate(tokens)))
            answered = time.perf_counter() - started
            await running.until(list(sent), 120)
            all_running = time.perf_counter() - started
            to_running = [(running.at[i] - at) * 1000 for i, at in sent.items()]
            near_placement, near_decisions = list(placement.ms), list(decisions.ms)

            # The same creates at a steady rate the pipeline keeps up with: latency, not queue.
            paced: dict[str, float] = {}
            gate = asyncio.Semaphore(CONCURRENCY)

            async def paced_one(n: int, due: float) -> None:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                async with gate:
                    at = time.perf_counter()
                    answer = await post(
                        session, "/v1/instances", tokens[n % len(tokens)], {**body, "name": "p"}
                    )
                    paced[answer["instance_ids"][0]] = at

            start = time.perf_counter()
            count = max(10, round(PACED_SECONDS * PACED_RATE))
            await asyncio.gather(*(paced_one(n, start + n / PACED_RATE) for n in range(count)))
            await running.until(list(paced), 120)
            paced_running = [(running.at[i] - at) * 1000 for i, at in paced.items()]

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
            await asyncio.gather(*(groups(t, n) for n, t in enumerate(tokens)))
            baseline = len(sent) / (time.perf_counter() - started)

            # 9,000 more hosts (healthy by a beat each), then a smaller round of creates.
            far: list[str] = []
            if far_hosts:
                far = await register_hosts(platform, cluster, far_hosts, "far")
                await beat_once(platform, far)
                placement.ms.clear()
                decisions.ms.clear()
                far_sent: dict[str, float] = {}
                per = max(1, per // 2)
                await asyncio.gather(
                    *(create_all(t, n, far_sent) for n, t in enumerate(tokens[:4]))
                )
            figures = {
                "hosts": float(host_count),
                "creates": float(len(sent)),
                "creates/s (202 answered)": len(sent) / answered,
                "creates/s (to all running)": len(sent) / all_running,
                "request to running p50 ms": statistics.median(to_running),
                "request to running p95 ms": p(to_running, 0.95),
                f"at {PACED_RATE:.0f} creates/s: request to running p50 ms": statistics.median(
                    paced_running
                ),
                f"at {PACED_RATE:.0f} creates/s: request to running p95 ms": p(paced_running, 0.95),
                f"placement p95 ms over {host_count} hosts": p(near_placement, 0.95),
                f"create decision p95 ms over {host_count} hosts, 50 at once": p(
                    near_decisions, 0.95
                ),
                "baseline: server group creates/s": baseline,
            }
            if far:
                total = host_count + len(far)
                figures[f"placement p95 ms over {total} hosts"] = p(placement.ms, 0.95)
                figures[f"create decision p95 ms over {total} hosts, 4 at once"] = p(
                    decisions.ms, 0.95
                )
            return figures, baseline
    finally:
        stop.set()
        if fleet is not None:
            await fleet.close()
        follower.cancel()
        await runner.cleanup()
        await asyncio.gather(worker, identity, return_exceptions=True)
        js = platform.js
        for host_id in host_ids:
            with contextlib.suppress(NotFoundError):
                await js.delete_consumer(hostwire.COMMANDS_STREAM, durable_name(host_id))
        with contextlib.suppress(NotFoundError):
            await js.delete_consumer(
                hostwire.OUTCOMES_STREAM, f"scloud-outcomes-{platform.settings.schema}"
            )


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
    parser.add_argument("--scale", type=float, default=1.0, help="1.0: 1,000 hosts")
    parser.add_argument("--creates", type=int, default=None, help="default: 1,000 x scale")
    parser.add_argument(
        "--far-hosts", type=int, default=None, help="hosts added for the second placement figure"
    )
    args = parser.parse_args()
    hosts = max(2, round(1000 * args.scale))
    creates = args.creates or max(CONCURRENCY, round(1000 * args.scale))
    far = args.far_hosts if args.far_hosts is not None else hosts * 9
    figures, baseline = asyncio.run(bench(hosts, creates, far))
    ratios = {"creates/s vs server-group creates/s": figures["creates/s (202 answered)"] / baseline}
    report("compute: creates through API, scheduler, NATS and simulated hosts", figures, ratios)


if __name__ == "__main__":
    main()
