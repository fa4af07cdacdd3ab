"""A newcomer's first VM: empty state dir -> ``scloud run`` -> the demo login -> create ->
``running``, in at most four calls, with nothing set up by hand.

The real ``scloud run`` runs as a subprocess on the test PostgreSQL (a schema of its own)
and NATS, with the simulated host driver (the real-QEMU tests boot the same starter image).
A second start on the same state dir finds the local cloud instead of making another.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from gateways.starter_image import cache_dir
from tests.integration.conftest import drop_schema
from tests.support.ports import port_outside_ephemeral_range
from tests.support.scloud_process import start_scloud_run

REPO = Path(__file__).resolve().parents[2]
UP_BUDGET = 240.0
"""Seconds for the banner: the first build of the starter image downloads a kernel."""
DEMO = re.compile(r"^Demo tenant: (\S+)  password: (\S+)$")
CLOUD = re.compile(r"^Local cloud: region (\S+)  flavor (\S+)  image (\S+)$")


class Platform:
    def __init__(self, url: str, lines: list[str]) -> None:
        self.url, self.lines = url, lines

    def line(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        return next((m for line in self.lines if (m := pattern.match(line))), None)


@contextlib.asynccontextmanager
async def scloud_run(
    state_dir: Path, database_url: str, nats_url: str, schema: str
) -> AsyncIterator[Platform]:
    port = port_outside_ephemeral_range()
    tag = secrets.token_hex(4)
    process, log = await start_scloud_run(
        state_dir,
        {
            "SCLOUD_DATABASE_URL": database_url,
            "SCLOUD_NATS_URL": nats_url,
            "SCLOUD_SCHEMA": schema,
            "SCLOUD_STREAM": f"FIRST_{tag.upper()}",
            "SCLOUD_SUBJECT_PREFIX": f"first-{tag}",
            "SCLOUD_HOST_REGISTER_SUBJECT": f"hosts.register.first-{tag}",
            "SCLOUD_API_PORT": str(port),
            "SCLOUD_HOST_DRIVER": "simulated",
            "SCLOUD_STARTER_IMAGE_DIR": str(cache_dir()),
            "SCLOUD_BILLING_SETTLE_SECONDS": "0",
        },
        append_log=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(UP_BUDGET):
            while not (lines and lines[-1].startswith("Local cloud:")):
                raw = await process.stdout.readline()
                if not raw:
                    await process.wait()
                    pytest.fail(f"scloud run exited ({process.returncode}):\n{log.read_text()}")
                lines.append(raw.decode().rstrip("\n"))
        yield Platform(f"http://127.0.0.1:{port}", lines)
    except TimeoutError:
        pytest.fail(f"no local cloud within {UP_BUDGET:g} s:\n{lines}\n{log.read_text()}")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()
                pytest.fail("scloud run did not end within 30 s of SIGTERM")


@pytest.fixture
async def first_schema(database_url: str) -> AsyncIterator[str]:
    name = f"first_{secrets.token_hex(4)}"
    yield name
    await drop_schema(database_url, name)


async def test_a_newcomer_runs_a_vm_in_four_calls_after_the_first_start(
    tmp_path: Path, database_url: str, nats_url: str, first_schema: str
) -> None:
    state_dir = tmp_path / "state"
    assert not state_dir.exists()
    async with scloud_run(state_dir, database_url, nats_url, first_schema) as platform:
        demo, cloud = platform.line(DEMO), platform.line(CLOUD)
        assert demo is not None, platform.lines
        assert cloud is not None, platform.lines
        email, password = demo.groups()
        region_id, flavor_id, image_id = cloud.groups()
        assert image_id.startswith("img-"), platform.lines

        calls = 0
        async with aiohttp.ClientSession(platform.url) as http:
            calls += 1
            async with http.post(
                "/v1/auth/login", json={"email": email, "password": password}
            ) as response:
                assert response.status == 200, await response.text()
                auth = {"Authorization": f"Bearer {(await response.json())['token']}"}
            calls += 1
            body = {
                "name": "first-vm",
                "region_id": region_id,
                "flavor_id": flavor_id,
                "image_id": image_id,
            }
            async with http.post("/v1/instances", json=body, headers=auth) as response:
                assert response.status == 202, await response.text()
                created = await response.json()
            (instance_id,) = created["instance_ids"]
            status = None
            while status != "running" and calls < 4:
                calls += 1
                async with http.get(
                    f"/v1/instances/{instance_id}",
                    params={"until": "running", "wait": "60"},
                    headers={**auth, "X-Scloud-Min-Position": str(created["position"])},
                ) as response:
                    assert response.status == 200, await response.text()
                    status = (await response.json())["status"]
        assert status == "running" and calls <= 4

    # The second start finds the same cloud: no second region, tenant or password.
    async with scloud_run(state_dir, database_url, nats_url, first_schema) as again:
        assert again.line(DEMO) is None, again.lines
        assert again.line(CLOUD) is not None
        assert again.line(CLOUD).groups() == (region_id, flavor_id, image_id)  # type: ignore[union-attr]
        assert any("password was shown at first start" in line for line in again.lines)
