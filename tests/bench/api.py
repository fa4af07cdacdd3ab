"""API throughput and latency at 64 connections, against a raw aiohttp "hello" baseline.

The platform runs as deployed: ``scloud api`` and ``scloud worker`` in their own processes
on a scratch schema. The load comes from this process over loopback, with a lean keep-alive
HTTP/1.1 client on raw asyncio that costs a third of the aiohttp client's CPU (measured
in the same run), because on a small machine the client shares the CPUs with the server.

Each phase is either saturation (64 connections, each sending as soon as it has its
answer: requests/s, and latencies that are mostly queueing) or a fixed rate of 2,000
requests/s over the 64 connections (latency from when each request was due). Besides
requests/s and p50/p95/p99, a phase reports the server process's CPU per request and how
busy the machine was: on a shared machine those say whether a figure is ours or a
neighbour's.

Run: ``python -m tests.bench.api [--scale 1.0] [--profile DIR]`` from the repository root;
``--profile`` samples the API with py-spy (``pip install py-spy``) into DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import nats
from nats.js.errors import NotFoundError

from api.bootstrap import ensure_first_admin, open_platform
from gateways.settings import Settings
from tests.bench.common import database, nats_server, report, scratch_schema
from tests.bench.processes.api_server import (
    HELLO_PATH,
    HOST,
    Clocks,
    free_port,
    hello_server,
    machine_busy_pct,
    py_spy,
    scloud,
    server_process,
)

CONNECTIONS = 64
WARMUP_SECONDS = 1.0
ADMIN_EMAIL = "admin@bench.example"
ADMIN_PASSWORD = "bench-admin-password"
OWNER_EMAIL = "owner@bench.example"
OWNER_PASSWORD = "bench-owner-password"
SUB_ACCOUNTS = 20
TARGET_P95_MS = 10.0
TARGET_RPS = 2000.0
BUSY_MACHINE_PCT = 20.0

Sender = Callable[[int], Awaitable[int]]
"""Sends request number n on one connection and returns the answer's status."""
Build = Callable[[int], bytes]
"""The bytes of request number n."""


# -- the load generator --------------------------------------------------------------


class HttpConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: a request, its whole answer, then the next."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None
        self.length = -1
        self.status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.length < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            start = head.find(b"\r\ncontent-length:")
            if start < 0:
                self._fail(ValueError("an answer without Content-Length"))
                return
            stop = head.find(b"\r\n", start + 2)
            self.status = int(head[9:12])
            self.length = end + 4 + int(head[start + 17 : stop if stop > 0 else None])
        if len(self.buffer) >= self.length:
            del self.buffer[: self.length]
            self.length = -1
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(self.status)

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"the server closed the connection ({exc})"))

    def _fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


def http_request(
    method: str, path: str, port: int, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if method != "GET":
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@contextlib.asynccontextmanager
async def raw_client(port: int, build: Build) -> AsyncIterator[list[Sender]]:
    loop = asyncio.get_running_loop()
    connections: list[HttpConnection] = []
    try:
        for _ in range(CONNECTIONS):
            _, connection = await loop.create_connection(HttpConnection, HOST, port)
            connections.append(connection)
        yield [_sender(connection, build) for connection in connections]
    finally:
        for connection in connections:
            if connection.transport is not None:
                connection.transport.close()


def _sender(connection: HttpConnection, build: Build) -> Sender:
    def send(n: int) -> Awaitable[int]:
        return connection.send(build(n))

    return send


@contextlib.asynccontextmanager
async def aiohttp_client(url: str) -> AsyncIterator[list[Sender]]:
    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(_: int) -> int:
            async with session.get(url) as response:
                await response.read()
                return response.status

        yield [send] * CONNECTIONS


@dataclass(frozen=True)
class Measured:
    latencies: list[float]
    statuses: Counter[int]
    before: Clocks
    after: Clocks

    def figures(self, name: str) -> dict[str, float]:
        seconds = self.after.wall - self.before.wall
        count = max(len(self.latencies), 1)
        ordered = sorted(self.latencies)
        server = self.after.server_cpu - self.before.server_cpu
        client = self.after.client_cpu - self.before.client_cpu
        ticks = self.after.machine_total - self.before.machine_total
        busy = self.after.machine_busy - self.before.machine_busy

        def ms(q: float) -> float:
            return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

        errors = sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        return {
            f"{name}_rps": round(len(self.latencies) / seconds, 1),
            f"{name}_p50_ms": ms(0.50),
            f"{name}_p95_ms": ms(0.95),
            f"{name}_p99_ms": ms(0.99),
            f"{name}_non_2xx": float(errors),
            f"{name}_server_cpu_us_per_request": round(server / count * 1e6, 1),
            f"{name}_server_process_busy_pct": round(server / seconds * 100, 1),
            f"{name}_client_cpu_us_per_request": round(client / count * 1e6, 1),
            f"{name}_machine_busy_pct": round(busy / max(ticks, 1) * 100, 1),
        }


async def measure(
    senders: Sequence[Sender], pids: Sequence[int], seconds: float, rate: float | None = None
) -> Measured:
    """Load for ``seconds`` after a warm-up; what completes inside that window counts.

    Without ``rate`` every connection sends its next request as soon as it has the answer
    (saturation). With ``rate`` the connections share a fixed schedule of that many requests
    a second, and latency runs from when a request was due, so a slow answer that delays
    the next request is charged to it (no coordinated omission).
    """
    numbers = itertools.count()
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    measuring, running = False, True
    interval = len(senders) / rate if rate else 0.0
    start = time.perf_counter()

    async def loop(send: Sender, due: float) -> None:
        while running:
            if interval:
                if (delay := due - time.perf_counter()) > 0:
                    await asyncio.sleep(delay)
            else:
                due = time.perf_counter()
            status = await send(next(numbers))
            if measuring:
                latencies.append(time.perf_counter() - due)
                statuses[status] += 1
            due += interval

    offsets = [start + k * interval / len(senders) for k in range(len(senders))]
    tasks = [
        asyncio.create_task(loop(send, due)) for send, due in zip(senders, offsets, strict=True)
    ]
    await asyncio.sleep(WARMUP_SECONDS)
    before, measuring = Clocks.now(pids), True
    await asyncio.sleep(seconds)
    measuring, after = False, Clocks.now(pids)
    running = False
    await asyncio.gather(*tasks)
    return Measured(latencies, statuses, before, after)


# -- the platform --------------------------------------------------------------------


@dataclass(frozen=True)
class Tenant:
    """The bench tenant's owner, signed in, and the owner's API key."""

    token: str
    api_key: str


async def _call(http: aiohttp.ClientSession, method: str, path: str, token: str, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.request(method, path, json=body, headers=headers) as response:
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {await response.text()}")
        return await response.json()


async def prepare(base: str) -> Tenant:
    """A tenant with room for many projects, its signed-in owner, an API key, some users."""
    async with aiohttp.ClientSession(base) as http:
        login = {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
        admin = (await _call(http, "POST", "/v1/auth/login", "", login))["token"]
        tenant = {"name": "bench", "owner_email": OWNER_EMAIL, "owner_password": OWNER_PASSWORD}
        await _call(http, "POST", "/v1/admin/tenants", admin, tenant)
        login = {"email": OWNER_EMAIL, "password": OWNER_PASSWORD}
        owner = await _call(http, "POST", "/v1/auth/login", "", login)
        tenant_id, token = owner["tenant_id"], owner["token"]
        limits = {"limits": {"projects": 10**9, "sub_accounts": 10**9}}
        await _call(http, "PUT", f"/v1/admin/tenants/{tenant_id}/quotas", admin, limits)
        key = await _call(http, "POST", "/v1/api-keys", token, {"name": "bench"})
        position = key["position"]
        for n in range(SUB_ACCOUNTS):
            user = {"email": f"user{n}@bench.example", "password": OWNER_PASSWORD}
            position = (await _call(http, "POST", "/v1/users", token, user))["position"]
        await _call(http, "GET", f"/v1/users?min_position={position}", token, None)
    return Tenant(token, key["api_key"])


def gets(port: int, path: str, credential: str) -> Build:
    request = http_request("GET", path, port, {"Authorization": f"Bearer {credential}"})
    return lambda _: request


def creates(port: int, path: str, token: str, body: Callable[[int], dict[str, Any]]) -> Build:
    run = secrets.token_hex(4)

    def build(n: int) -> bytes:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": f"{run}-{n}",
        }
        return http_request("POST", path, port, headers, json.dumps(body(n)).encode())

    return build


@contextlib.asynccontextmanager
async def platform(database_url: str, nats_url: str, state: Path) -> AsyncIterator[tuple[int, int]]:
    """``scloud api`` and ``scloud worker`` on a scratch schema: (port, the API's pid)."""
    async with scratch_schema(database_url, "bench_api") as schema:
        port = free_port()
        settings = Settings(
            database_url=database_url,
            nats_url=nats_url,
            state_dir=state,
            schema=schema,
            api_port=port,
            admin_email=ADMIN_EMAIL,
            admin_password=ADMIN_PASSWORD,
            stream_name=f"BENCH_API_{os.getpid()}",
            subject_prefix=f"bench_api_{os.getpid()}",
            token_key=secrets.token_hex(32),
        )
        async with open_platform(settings, database_url, nats_url) as opened:
            await ensure_first_admin(opened)
        env = {
            "SCLOUD_DATABASE_URL": database_url,
            "SCLOUD_NATS_URL": nats_url,
            "SCLOUD_SCHEMA": schema,
            "SCLOUD_STATE_DIR": str(state),
            "SCLOUD_API_HOST": HOST,
            "SCLOUD_API_PORT": str(port),
            "SCLOUD_TOKEN_KEY": settings.token_key or "",
            "SCLOUD_STREAM": settings.stream_name,
            "SCLOUD_SUBJECT_PREFIX": settings.subject_prefix,
        }
        try:
            async with (
                server_process(
                    "api", scloud("api"), state, env=env, ready_url=f"http://{HOST}:{port}/healthz"
                ) as api,
                server_process("worker", scloud("worker"), state, env=env),
            ):
                yield port, api.pid
        finally:
            client = await nats.connect(nats_url)
            with contextlib.suppress(NotFoundError):
                await client.jetstream().delete_stream(settings.stream_name)
            await client.close()


# -- the run ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    port: int
    pid: int


@dataclass(frozen=True)
class Phase:
    name: str
    server: Server
    """Where the load goes, and whose CPU time is charged to it."""
    build: Build
    seconds: float
    rate: float | None = None
    profiled: bool = False


def phases(hello: Server, api: Server, tenant: Tenant, scale: float) -> list[Phase]:
    def at(base_seconds: float) -> float:
        return max(base_seconds * scale, 0.5)

    def role(n: int) -> dict[str, Any]:
        return {"name": f"role {n}", "actions": ["iam:user:read"]}

    hello_get = gets(hello.port, HELLO_PATH, "unused")
    me = gets(api.port, "/v1/me", tenant.token)
    users = gets(api.port, "/v1/users", tenant.token)
    projects = creates(api.port, "/v1/projects", tenant.token, lambda n: {"name": f"project {n}"})
    roles = creates(api.port, "/v1/roles", tenant.token, role)
    return [
        Phase("hello", hello, hello_get, at(3)),
        Phase("me_token", api, me, at(4), profiled=True),
        Phase("me_api_key", api, gets(api.port, "/v1/me", tenant.api_key), at(3)),
        Phase("list_users", api, users, at(3), profiled=True),
        Phase("hello_at_2000_rps", hello, hello_get, at(3), rate=TARGET_RPS),
        Phase("me_token_at_2000_rps", api, me, at(4), rate=TARGET_RPS),
        Phase("create_project", api, projects, at(3), profiled=True),
        Phase("create_role", api, roles, at(3), profiled=True),
    ]


async def run_phase(phase: Phase, profile_dir: Path | None) -> dict[str, float]:
    pid = phase.server.pid
    async with raw_client(phase.server.port, phase.build) as senders:
        profiler = None
        if profile_dir is not None and phase.profiled:
            output = profile_dir / f"{phase.name}.txt"
            profiler = await py_spy(pid, output, WARMUP_SECONDS + phase.seconds)
        measured = await measure(senders, [pid], phase.seconds, phase.rate)
        if profiler is not None:
            await profiler.wait()
    print(f"{phase.name}: answers by status {dict(sorted(measured.statuses.items()))}", flush=True)
    return measured.figures(phase.name)


async def main(scale: float, profile_dir: Path | None) -> None:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as state:
        hello_port = free_port()
        async with (
            database() as database_url,
            nats_server() as nats_url,
            platform(database_url, nats_url, Path(state)) as (port, api_pid),
            server_process(
                "hello",
                hello_server(hello_port),
                Path(state),
                ready_url=f"http://{HOST}:{hello_port}{HELLO_PATH}",
            ) as hello,
        ):
            tenant = await prepare(f"http://{HOST}:{port}")
            results["machine_busy_before_load_pct"] = await machine_busy_pct(1.0)
            servers = Server(hello_port, hello.pid), Server(port, api_pid)
            for phase in phases(*servers, tenant, scale):
                results.update(await run_phase(phase, profile_dir))
            async with aiohttp_client(f"http://{HOST}:{hello_port}{HELLO_PATH}") as senders:
                measured = await measure(senders, [hello.pid], max(2 * scale, 0.5))
            results.update(measured.figures("hello_aiohttp_client"))
    summarise(results)


def summarise(results: dict[str, float]) -> None:
    hello_rps = results["hello_rps"]
    rps, p95 = results["me_token_rps"], results["me_token_at_2000_rps_p95_ms"]
    achieved = results["me_token_at_2000_rps_rps"]
    cpus = os.cpu_count() or 0
    print(f"machine: {cpus} CPUs shared by this client, the servers, PostgreSQL and other work")
    if (idle_load := results["machine_busy_before_load_pct"]) > BUSY_MACHINE_PCT:
        print(
            f"WARNING: the machine was {idle_load:.0f}% busy before any load from this bench; "
            "other work competes for the CPUs and the latencies are not representative"
        )
    print(
        f"target token GET p95 < {TARGET_P95_MS:g} ms at {TARGET_RPS:,.0f} req/s: "
        f"{p95:.2f} ms at {achieved:,.0f} req/s, {_met(p95 < TARGET_P95_MS)}"
    )
    print(f"target token GET >= {TARGET_RPS:,.0f} req/s: {rps:,.0f}, {_met(rps >= TARGET_RPS)}")
    results["cpus"] = float(cpus)
    results["target_me_token_p95_met"] = float(p95 < TARGET_P95_MS)
    results["target_me_token_rps_met"] = float(rps >= TARGET_RPS)
    ratios = {
        f"{name}_rps_vs_hello": results[f"{name}_rps"] / hello_rps
        for name in ("me_token", "me_api_key", "list_users", "create_project", "create_role")
    }
    for name in ("me_token", "me_api_key", "list_users", "create_project", "create_role"):
        ratios[f"{name}_server_cpu_vs_hello"] = (
            results[f"{name}_server_cpu_us_per_request"]
            / results["hello_server_cpu_us_per_request"]
        )
    ratios["me_token_p95_vs_hello_at_2000_rps"] = p95 / results["hello_at_2000_rps_p95_ms"]
    ratios["aiohttp_client_vs_raw_client_on_hello"] = (
        results["hello_aiohttp_client_rps"] / hello_rps
    )
    report("API at 64 connections on loopback (req/s, ms, CPU µs per request)", results, ratios)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies every duration")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="also sample the API with py-spy (must be on PATH) into DIR, one file a phase",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.scale, arguments.profile))
