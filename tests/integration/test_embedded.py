"""The embedded PostgreSQL and NATS, always started here, whatever the machine runs."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import asyncpg
import nats
import pytest
from nats.js.api import StorageType

from gateways.embedded import (
    EmbeddedNats,
    EmbeddedPostgres,
    StateDirInUse,
    jetstream_answers,
    platform_services,
    postgres_answers,
)
from gateways.embedded.child import free_loopback_port
from gateways.embedded.statedir import end_orphan
from gateways.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _owner_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


async def test_postgres_keeps_rows_across_restart(tmp_path: Path) -> None:
    async with EmbeddedPostgres(tmp_path / "pg") as server:
        connection = await asyncpg.connect(server.url)
        await connection.execute("CREATE TABLE kept (word text)")
        await connection.execute("INSERT INTO kept VALUES ('durable')")
        await connection.close()

    async with EmbeddedPostgres(tmp_path / "pg") as server:
        connection = await asyncpg.connect(server.url)
        assert await connection.fetchval("SELECT word FROM kept") == "durable"
        await connection.close()


async def test_postgres_is_private(tmp_path: Path) -> None:
    async with EmbeddedPostgres(tmp_path / "pg") as server:
        assert "@127.0.0.1:" in server.url
        without_password = server.url.replace(server.url.split("@")[0], "postgresql://postgres")
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(without_password)
        assert server.pid is not None
        if os.geteuid() == 0:
            assert _owner_uid(server.pid) != 0
            assert (server.directory / "superuser.password").stat().st_mode & 0o077 == 0


async def test_nats_keeps_messages_across_restart(tmp_path: Path) -> None:
    async with EmbeddedNats(tmp_path / "nats") as server:
        client = await nats.connect(server.url)
        stream = client.jetstream()
        await stream.add_stream(name="KEPT", subjects=["kept.>"], storage=StorageType.FILE)
        await stream.publish("kept.word", b"durable")
        await client.close()

    async with EmbeddedNats(tmp_path / "nats") as server:
        client = await nats.connect(server.url)
        message = await client.jetstream().get_msg("KEPT", 1)
        assert message.data == b"durable"
        await client.close()


async def test_nats_syncs_every_write(tmp_path: Path) -> None:
    async with EmbeddedNats(tmp_path / "nats", monitoring=True) as server:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{server.monitor_url}/varz") as response,
        ):
            varz = json.loads(await response.text())
        assert varz["jetstream"]["config"]["sync_always"] is True
        assert "sync_interval: always" in server.config_path.read_text()
        assert server.config_path.stat().st_mode & 0o077 == 0  # it holds the token


async def test_a_port_taken_before_the_server_binds_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        ports = iter([squatter.getsockname()[1]])
        monkeypatch.setattr(
            "gateways.embedded.nats.free_loopback_port", lambda: next(ports, free_loopback_port())
        )
        async with EmbeddedNats(tmp_path / "nats") as server:
            assert f":{squatter.getsockname()[1]}" not in server.url
        assert "address already in use" in server.log_path.read_text()


async def test_a_state_dir_has_one_owner(tmp_path: Path) -> None:
    async with EmbeddedNats(tmp_path / "nats"):
        with pytest.raises(StateDirInUse):
            await EmbeddedNats(tmp_path / "nats").start()


async def test_platform_services_embeds_only_what_is_unset(tmp_path: Path) -> None:
    configured = Settings(database_url="postgresql://elsewhere/db", state_dir=tmp_path)
    async with platform_services(configured) as (database_url, nats_url):
        assert database_url == "postgresql://elsewhere/db"
        assert nats_url.startswith("nats://")
        assert not (tmp_path / "postgres").exists()


_HOLDER = """
import asyncio, sys
from pathlib import Path
from gateways.embedded import EmbeddedNats, EmbeddedPostgres

async def hold():
    async with EmbeddedPostgres(Path(sys.argv[1]) / "postgres") as pg, \\
            EmbeddedNats(Path(sys.argv[1]) / "nats") as ns:
        print(pg.pid, ns.pid, flush=True)
        await asyncio.sleep(600)

asyncio.run(hold())
"""


async def test_servers_die_with_their_parent(tmp_path: Path) -> None:
    holder = await asyncio.create_subprocess_exec(
        *(sys.executable, "-c", _HOLDER, str(tmp_path)),
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert holder.stdout is not None
    line = (await holder.stdout.readline()).decode()
    pids = [int(pid) for pid in line.split()]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids), line

    holder.kill()
    await holder.wait()
    async with asyncio.timeout(15):
        while any(_alive(pid) for pid in pids):
            await asyncio.sleep(0.05)
    assert "database system is shut down" in (tmp_path / "postgres/postgres.log").read_text()

    async with platform_services(Settings(state_dir=tmp_path)) as (database_url, _):
        connection = await asyncpg.connect(database_url)
        await connection.close()


async def test_an_orphan_is_ended_and_a_stranger_is_not(tmp_path: Path) -> None:
    marker = str(tmp_path / "marker")
    sleeper = (sys.executable, "-c", "import time; time.sleep(60)")
    orphan = await asyncio.create_subprocess_exec(*sleeper, marker)
    stranger = await asyncio.create_subprocess_exec(*sleeper)
    try:
        (tmp_path / "orphan.pid").write_text(f"{orphan.pid}\n")
        (tmp_path / "stranger.pid").write_text(f"{stranger.pid}\n")
        escalation = ((signal.SIGTERM, 5.0),)
        assert await end_orphan(tmp_path / "stranger.pid", marker, escalation) is None
        assert await end_orphan(tmp_path / "orphan.pid", marker, escalation) == orphan.pid
        assert await orphan.wait() == -signal.SIGTERM
        assert stranger.returncode is None
    finally:
        for process in (orphan, stranger):
            if process.returncode is None:
                process.kill()
                await process.wait()


async def test_session_fixtures_answer(database_url: str, nats_url: str) -> None:
    """The conftest's servers, machine or embedded (SCLOUD_TEST_EMBEDDED=1), are usable."""
    assert await postgres_answers(database_url)
    assert await jetstream_answers(nats_url)
    if os.environ.get("SCLOUD_TEST_EMBEDDED", "0") not in ("", "0"):
        assert ":5432/" not in database_url
        assert not nats_url.endswith(":4222")
