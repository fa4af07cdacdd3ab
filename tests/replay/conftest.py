"""One realistic history, written through the HTTP API once per session, then read by CLI runs.

The platform is stopped before the tests run, so its projections are caught up and still.
Tests that alter the store work on a clone of the schema (``clone``), never on the original.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from api.bootstrap import ensure_first_admin, open_platform, run_worker
from gateways.settings import Settings
from tests.api.conftest import ADMIN_PASSWORD, Api, Caller
from tests.integration.conftest import drop_schema

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class History:
    """What the module's history holds, for the tests to ask about."""

    database_url: str
    schema: str
    tenant_id: str
    other_tenant_id: str
    owner_id: str
    role_id: str
    key_id: str
    role_created_op: str
    keyed_project_id: str
    """Created with an Idempotency-Key, so its events carry a command id."""
    before_role: datetime
    between_role_changes: datetime
    after_all: datetime


@dataclass
class Run:
    code: int
    out: str
    err: str


REPLAY = (sys.executable, "-m", "replay.cli")
"""What ``scloud replay`` runs, without loading the server first (about a second saved)."""
SCLOUD_REPLAY = (str(Path(sys.executable).with_name("scloud")), "replay")
"""The installed entry point itself."""


def replay(*args: str | Path, command: tuple[str, ...] = REPLAY) -> Run:
    """``scloud replay ARGS`` in a child process, as a script would run it."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("SCLOUD_DATABASE_URL", None)
    env.pop("SCLOUD_SCHEMA", None)
    done = subprocess.run(
        [*command, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    return Run(done.returncode, done.stdout, done.stderr)


def replay_many(*commands: tuple[str | Path, ...]) -> list[Run]:
    """Several independent runs at once (each is mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda args: replay(*args), commands))


def on(history: History, schema: str | None = None) -> tuple[str, ...]:
    """The options that point replay at the history's database (or a clone's schema)."""
    return ("--database-url", history.database_url, "--schema", schema or history.schema)


async def _write_history(api: Api, database_url: str, schema: str) -> History:
    owner = await api.tenant("replay-acme")
    other = await api.tenant("replay-other")
    assert owner.tenant_id is not None and other.tenant_id is not None
    for n in range(3):
        await api.settled(await owner.post("/v1/projects", json={"name": f"p{n}"}))
    await api.settled(await other.post("/v1/projects", json={"name": "elsewhere"}))
    await asyncio.sleep(0.05)
    before_role = datetime.now(UTC)
    await asyncio.sleep(0.05)
    role = await api.settled(
        await owner.post(
            "/v1/roles",
            json={"name": "viewer", "actions": ["iam:project:read"]},
            headers={"X-Request-Id": "req-role-create"},
        )
    )
    await asyncio.sleep(0.05)
    between = datetime.now(UTC)
    await asyncio.sleep(0.05)
    await api.settled(
        await owner.put(
            f"/v1/roles/{role['resource_id']}/actions",
            json={"actions": ["iam:project:read", "iam:role:read"]},
        )
    )
    key = await api.settled(await owner.post("/v1/api-keys", json={"name": "ci"}))
    await api.settled(await owner.post(f"/v1/api-keys/{key['key_id']}/actions/revoke"))
    denied = await owner.get("/v1/admin/tenants")
    assert denied.status == 403
    keyed = await api.settled(
        await owner.post(
            "/v1/projects", json={"name": "keyed"}, headers={"Idempotency-Key": "replay-key-1"}
        )
    )
    freeze = f"/v1/admin/tenants/{other.tenant_id}/actions/freeze"
    await api.settled(await api.admin.post(freeze, json={"reason": "unpaid"}))
    again = await api.admin.post(freeze, json={"reason": "twice"})
    assert again.status == 409, await again.text()  # recorded as a failed operation
    await api.wait_for(await api.platform.store.last_position())
    await asyncio.sleep(0.05)
    return History(
        database_url=database_url,
        schema=schema,
        tenant_id=owner.tenant_id,
        other_tenant_id=other.tenant_id,
        owner_id=owner.user_id,
        role_id=role["resource_id"],
        key_id=key["key_id"],
        role_created_op=role["operation_id"],
        keyed_project_id=keyed["resource_id"],
        before_role=before_role,
        between_role_changes=between,
        after_all=datetime.now(UTC),
    )


@pytest.fixture(scope="session")
async def history(
    database_url: str, nats_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[History]:
    schema = "rpl_" + secrets.token_hex(6)
    settings = Settings(
        database_url=database_url,
        nats_url=nats_url,
        state_dir=tmp_path_factory.mktemp("replay-state"),
        schema=schema,
        admin_password=ADMIN_PASSWORD,
        token_key=secrets.token_hex(32),
    )
    stop = asyncio.Event()
    try:
        async with open_platform(settings, database_url, nats_url) as platform:
            await ensure_first_admin(platform)
            await platform.identity.catch_up(platform.store)
            worker = asyncio.create_task(run_worker(platform, stop, relay=False))
            identity = asyncio.create_task(platform.identity.follow(platform.store, stop))
            client = TestClient(TestServer(build_app(platform)))
            await client.start_server()
            try:
                api = Api(platform, client, Caller(client, "", "", None))
                api.admin = await api.login(settings.admin_email, ADMIN_PASSWORD)
                written = await _write_history(api, database_url, schema)
            finally:
                stop.set()
                await client.close()
                await asyncio.wait_for(asyncio.gather(worker, identity), 10)
        yield written
    finally:
        await drop_schema(database_url, schema)


Clone = Callable[[], Awaitable[str]]


@pytest.fixture
async def clone(history: History) -> AsyncIterator[Clone]:
    """Copies of the history's schema (events, projections, checkpoints) to alter freely."""
    made: list[str] = []

    async def cloner() -> str:
        target = "rplc_" + secrets.token_hex(6)
        conn = await asyncpg.connect(history.database_url)
        try:
            tables = await conn.fetch(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
                history.schema,
            )
            async with conn.transaction():
                await conn.execute(f"CREATE SCHEMA {target}")
                for (table,) in tables:
                    await conn.execute(
                        f"CREATE TABLE {target}.{table} "
                        f"(LIKE {history.schema}.{table} INCLUDING INDEXES INCLUDING DEFAULTS)"
                    )
                    await conn.execute(
                        f"INSERT INTO {target}.{table} SELECT * FROM {history.schema}.{table}"
                    )
        finally:
            await conn.close()
        made.append(target)
        return target

    yield cloner
    for target in made:
        await drop_schema(history.database_url, target)
