"""``scloud run`` with the libvirt driver brings up the system libvirtd its host daemon needs.

The real ``scloud run`` runs as a subprocess (embedded PostgreSQL and NATS in a state dir of
its own, the API on a free port). Needs root, like the other real-QEMU tests: it starts
libvirtd when ``qemu:///system`` does not answer, and fails (never skips) when it cannot.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateways.embedded import EmbeddedLibvirtd, EmbeddedServiceError, host_libvirtd
from gateways.embedded import libvirtd as libvirtd_module
from gateways.embedded.libvirtd import running_here
from gateways.settings import Settings
from tests.support.libvirtd import URI, LibvirtdUnavailable, answers, running_libvirtd
from tests.support.ports import port_outside_ephemeral_range
from tests.support.scloud_process import start_scloud_run

REPO = Path(__file__).resolve().parents[2]
UP_BUDGET = 180.0
"""Seconds for ``scloud run`` to print its URL: initdb, NATS, libvirtd's first QEMU probe."""

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root: starts the system libvirtd under qemu:///system"
)


def children(pid: int) -> dict[str, int]:
    """The live child processes of ``pid``, by command name."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, parent = stat.rsplit(")", 1)[1].split()[:2]
        if int(parent) == pid and state not in ("Z", "X"):
            found[name] = int(entry.name)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def libvirt_client_pids() -> set[int]:
    """The processes connected to the system libvirtd, from its admin interface."""
    admin = ["virt-admin", "-c", "libvirtd:///system"]
    listing = subprocess.run(
        [*admin, "client-list", "libvirtd"], capture_output=True, text=True, check=True
    ).stdout
    pids: set[int] = set()
    for client in re.findall(r"^\s*(\d+)\s+unix", listing, re.MULTILINE):
        info = subprocess.run(
            [*admin, "client-info", "libvirtd", client], capture_output=True, text=True
        ).stdout
        if found := re.search(r"unix_process_id\s*:\s*(\d+)", info):
            pids.add(int(found.group(1)))
    return pids


@contextlib.asynccontextmanager
async def scloud_run(state_dir: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    """``scloud run`` with the libvirt driver on qemu:///system, up; SIGINT on the way out."""
    process, log = await start_scloud_run(
        state_dir,
        {
            "SCLOUD_API_PORT": str(port_outside_ephemeral_range()),
            "SCLOUD_ADMIN_PASSWORD": secrets.token_urlsafe(12),
            "SCLOUD_HOST_ID": f"lv-{secrets.token_hex(4)}",
            "SCLOUD_HOST_DRIVER": "libvirt",
            "SCLOUD_LIBVIRT_URI": URI,
            "SCLOUD_BILLING_SETTLE_SECONDS": "0",
            # The local cloud of a first start is tested on its own (test_first_start.py).
            "SCLOUD_FIRST_START": "0",
        },
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(UP_BUDGET):
            while b"SCloudStack is up" not in (line := await process.stdout.readline()):
                if not line:
                    await process.wait()
                    pytest.fail(f"scloud run exited ({process.returncode}):\n{log.read_text()}")
        yield process
    except TimeoutError:
        pytest.fail(f"scloud run was not up within {UP_BUDGET:g} s:\n{log.read_text()}")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(60):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                pytest.fail(f"scloud run ignored SIGINT for 60 s:\n{log.read_text()}")


async def wait_for_client(pid: int, seconds: float = 30.0) -> None:
    """``pid`` holds a connection to the system libvirtd (its host daemon reached it)."""
    deadline = time.monotonic() + seconds
    while pid not in (clients := await asyncio.to_thread(libvirt_client_pids)):
        assert time.monotonic() < deadline, f"{pid} never connected; clients: {clients}"
        await asyncio.sleep(0.5)


async def test_other_drivers_and_uris_start_no_libvirtd(tmp_path: Path) -> None:
    for settings in (
        Settings(state_dir=tmp_path, host_driver="simulated"),
        Settings(state_dir=tmp_path, libvirt_uri="qemu+tcp://elsewhere/system"),
        Settings(state_dir=tmp_path, libvirt_uri="test:///default"),
    ):
        async with host_libvirtd(settings) as libvirtd:
            assert libvirtd is None, settings
    assert not (tmp_path / "libvirtd").exists()


async def test_without_root_a_silent_libvirtd_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def silent(uri: str, **_: object) -> bool:
        return False

    monkeypatch.setattr(libvirtd_module, "libvirt_answers", silent)
    monkeypatch.setattr(libvirtd_module, "running_as_root", lambda: False)
    with pytest.raises(EmbeddedServiceError, match="SCLOUD_HOST_DRIVER=simulated"):
        async with host_libvirtd(Settings(state_dir=tmp_path)):
            pass
    assert not (tmp_path / "libvirtd" / "libvirtd.log").exists()  # nothing was started


@needs_root
async def test_scloud_run_starts_a_silent_libvirtd_and_stops_it(tmp_path: Path) -> None:
    if await asyncio.to_thread(answers):
        pytest.skip("a libvirtd already answers on qemu:///system: nothing to start here")
    async with scloud_run(tmp_path / "state") as scloud:
        assert await asyncio.to_thread(answers), "scloud run is up but qemu:///system is silent"
        started = children(scloud.pid)
        assert {"libvirtd", "virtlogd"} <= started.keys(), started
        await wait_for_client(scloud.pid)
    assert scloud.returncode == 0, (tmp_path / "state.log").read_text()
    assert not alive(started["libvirtd"]) and not alive(started["virtlogd"])
    assert (tmp_path / "state" / "libvirtd" / "libvirtd.log").exists()


@needs_root
async def test_scloud_run_leaves_an_answering_libvirtd_alone(tmp_path: Path) -> None:
    problem = ""
    try:
        with running_libvirtd(tmp_path / "own") as uri:
            there = {running_here("libvirtd"), running_here("virtlogd")}
            assert None not in there, there
            async with EmbeddedLibvirtd(tmp_path / "inner") as inner:
                assert inner.pid is None and inner.virtlogd_pid is None
            async with scloud_run(tmp_path / "state") as scloud:
                assert not {"libvirtd", "virtlogd"} & children(scloud.pid).keys()
                await wait_for_client(scloud.pid)
            assert scloud.returncode == 0, (tmp_path / "state.log").read_text()
            assert await asyncio.to_thread(answers, uri), "scloud run stopped a libvirtd"
            assert all(alive(pid) for pid in there if pid is not None), there
    except LibvirtdUnavailable as error:
        problem = str(error)
    if problem:
        pytest.fail(f"libvirtd cannot run on this machine: {problem}", pytrace=False)
