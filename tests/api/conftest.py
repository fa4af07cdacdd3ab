"""A running API on a fresh schema: the app, its projections, and signed-in callers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from api.app import build_app
from api.bootstrap import Platform, ensure_first_admin, open_platform, run_worker
from api.server import ApiRunner
from gateways.bus import hostwire
from gateways.bus.hostwire import command_subject
from gateways.settings import Settings
from hostd.streams import durable_name
from tests.integration.conftest import drop_schema

ADMIN_PASSWORD = "admin-password-for-tests"


class ApiTestServer(TestServer):
    """The test server runs the app as ``scloud run`` does: with the API's own HTTP server."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return ApiRunner(self.app, **kwargs)


@dataclass
class Caller:
    """An HTTP client that signs every request as one user."""

    client: TestClient
    token: str
    user_id: str
    tenant_id: str | None

    def headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **(extra or {})}

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(
            path, headers=self.headers(kwargs.pop("headers", None)), **kwargs
        )

    async def post(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self.client.post(
            path, json=json, headers=self.headers(kwargs.pop("headers", None)), **kwargs
        )

    async def put(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self.client.put(
            path, json=json, headers=self.headers(kwargs.pop("headers", None)), **kwargs
        )

    async def patch(self, path: str, json: Any = None, **kwargs: Any) -> Any:
        return await self.client.patch(
            path, json=json, headers=self.headers(kwargs.pop("headers", None)), **kwargs
        )


@dataclass
class Api:
    platform: Platform
    client: TestClient
    admin: Caller

    async def login(self, email: str, password: str) -> Caller:
        response = await self.client.post(
            "/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status == 200, await response.text()
        session = await response.json()
        return Caller(self.client, session["token"], session["user_id"], session["tenant_id"])

    async def tenant(self, name: str | None = None) -> Caller:
        """A new tenant; returns its owner, signed in."""
        name = name or f"tenant-{secrets.token_hex(3)}"
        email = f"owner-{secrets.token_hex(4)}@{name}.example"
        response = await self.admin.post(
            "/v1/admin/tenants",
            json={"name": name, "owner_email": email, "owner_password": "owner-password-123"},
        )
        assert response.status == 202, await response.text()
        return await self.login(email, "owner-password-123")

    async def sub_account(self, owner: Caller, roles: list[str], **extra: Any) -> Caller:
        email = f"user-{secrets.token_hex(4)}@example.com"
        response = await owner.post(
            "/v1/users",
            json={"email": email, "password": "user-password-1234", "roles": roles, **extra},
        )
        assert response.status == 202, await response.text()
        return await self.login(email, "user-password-1234")

    async def settled(self, response: Any) -> Any:
        """The JSON of an accepted mutation, after the read model has caught up with it."""
        assert response.status in (200, 201, 202), await response.text()
        body = await response.json()
        await self.wait_for(body.get("position", 0))
        return body

    async def wait_for(self, position: int) -> None:
        from projections.runner import wait_for_position

        # Denials are appended after their answer: what was denied so far is written first.
        await self.platform.denials.drained()
        for name in ("resource_documents", "audit_log"):
            assert await wait_for_position(
                self.platform.store.pool, self.platform.settings.schema, name, position, 10
            )


ApiFactory = Callable[[], Awaitable[Api]]


async def forget_hosts(platform: Platform) -> None:
    """Remove this platform's hosts from the shared NATS: their durable command consumers
    and any commands still queued for them. A work-queue stream keeps both for ever, and
    a machine's NATS outlives test runs: thousands left behind slowed every daemon down."""
    hosts = await platform.documents.ids_of_kind(platform.store.pool, "hst")
    jsm = platform.nats.jsm()
    for host_id in hosts:
        with contextlib.suppress(Exception):
            await jsm.delete_consumer(hostwire.COMMANDS_STREAM, durable_name(host_id))
        with contextlib.suppress(Exception):
            await jsm.purge_stream(hostwire.COMMANDS_STREAM, subject=command_subject(host_id))


def platform_settings(
    database_url: str, nats_url: str, state_dir: Path, schema: str, **overrides: Any
) -> Settings:
    """A test platform's settings: its own schema, stream, subjects and token key."""
    return Settings(
        database_url=database_url,
        nats_url=nats_url,
        state_dir=state_dir,
        schema=schema,
        admin_password=ADMIN_PASSWORD,
        stream_name=f"T_{schema.upper()}",
        # Tests send to no address but loopback, whatever a webhook (or a fuzzer) names.
        webhook_loopback_only=True,
        subject_prefix=schema,
        token_key=secrets.token_hex(32),
        **overrides,
    )


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    """Settings a test module changes for its platform (override this fixture)."""
    return {}


@pytest.fixture
async def api(
    database_url: str, nats_url: str, tmp_path: Path, platform_overrides: dict[str, Any]
) -> AsyncIterator[Api]:
    schema = "api_" + secrets.token_hex(6)
    settings = platform_settings(database_url, nats_url, tmp_path, schema, **platform_overrides)
    stop = asyncio.Event()
    try:
        async with open_platform(settings, database_url, nats_url) as platform:
            await ensure_first_admin(platform)
            await platform.identity.catch_up(platform.store)
            worker = asyncio.create_task(run_worker(platform, stop, relay=False))
            identity = asyncio.create_task(platform.identity.follow(platform.store, stop))
            client = TestClient(ApiTestServer(build_app(platform)))
            await client.start_server()
            try:
                api = Api(platform, client, Caller(client, "", "", None))
                api.admin = await api.login(settings.admin_email, ADMIN_PASSWORD)
                yield api
            finally:
                stop.set()
                await client.close()
                # A worker still folding a big history (the 2,400-instance rebuild test) needs more.
                await asyncio.wait_for(asyncio.gather(worker, identity), 30)
                # Each test platform has its own durable outcome consumer: leave none behind.
                with contextlib.suppress(Exception):
                    await platform.js.delete_consumer(
                        hostwire.OUTCOMES_STREAM, f"scloud-outcomes-{schema}"
                    )
                await forget_hosts(platform)
    finally:
        await drop_schema(database_url, schema)
