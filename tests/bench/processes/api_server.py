"""The servers the API bench loads, each in its own process; their clocks; a profiler.

- the platform: ``scloud api`` and ``scloud worker``, exactly as deployed;
- the baseline: a raw aiohttp "hello" server,
  ``python -m tests.bench.processes.api_server --port N``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

HOST = "127.0.0.1"
HELLO_PATH = "/hello"
HELLO_BODY = b'{"hello":"world"}'
REPOSITORY = Path(__file__).resolve().parents[3]
STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time one process has used (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of every CPU of the machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass(frozen=True)
class Clocks:
    """Wall time, this process's CPU, the servers' CPU and the machine's, at one moment."""

    wall: float
    client_cpu: float
    server_cpu: float
    machine_busy: int
    machine_total: int

    @classmethod
    def now(cls, server_pids: Sequence[int]) -> Clocks:
        busy, total = machine_ticks()
        server = sum(cpu_seconds(pid) for pid in server_pids)
        return cls(time.perf_counter(), time.process_time(), server, busy, total)


async def machine_busy_pct(seconds: float) -> float:
    """How busy the machine is while this bench sends nothing (other work shares it)."""
    busy, total = machine_ticks()
    await asyncio.sleep(seconds)
    busy_after, total_after = machine_ticks()
    return round((busy_after - busy) / max(total_after - total, 1) * 100, 1)


async def py_spy(pid: int, output: Path, seconds: float) -> asyncio.subprocess.Process:
    """Sample ``pid`` with py-spy (on PATH) for ``seconds``, as collapsed stacks."""
    argv = ["py-spy", "record", "--pid", str(pid), "--format", "raw", "--rate", "200"]
    argv += ["--duration", str(max(1, round(seconds))), "--output", str(output)]
    return await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )


def scloud(command: str) -> list[str]:
    """The ``scloud`` command line, run by this interpreter."""
    return [sys.executable, "-m", "api.cli", command]


def hello_server(port: int) -> list[str]:
    return [sys.executable, "-m", "tests.bench.processes.api_server", "--port", str(port)]


@contextlib.asynccontextmanager
async def server_process(
    name: str,
    argv: Sequence[str],
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    ready_url: str | None = None,
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Start ``argv``, wait until ``ready_url`` answers 200, and SIGTERM it on the way out."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=REPOSITORY,
            env={**os.environ, **(env or {})},
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        if ready_url is not None:
            await _until_ready(process, ready_url, log_path)
        yield process
    finally:
        await terminate(process, 15)


async def terminate(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM, and SIGKILL if it has not ended within ``grace`` seconds."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            process.kill()
            await process.wait()


async def _until_ready(process: asyncio.subprocess.Process, url: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise RuntimeError(
        f"{url} did not come up (exit code {process.returncode}):\n{_tail(log_path)}"
    )


def _tail(log_path: Path) -> str:
    return log_path.read_text(errors="replace")[-3000:]


def hello_app() -> web.Application:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(body=HELLO_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_get(HELLO_PATH, hello)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="the API bench's raw aiohttp baseline")
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    web.run_app(hello_app(), host=HOST, port=port, access_log=None, print=None)
