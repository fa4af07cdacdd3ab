"""PostgreSQL away: commands and reads answer 503 ``store_unavailable``, never 500.

The platform's pool goes through a loopback proxy the test cuts, so the database becomes
unreachable to this platform only (the machine's shared PostgreSQL keeps serving every
other test). No worker runs: its projections would share the proxy, and what is checked
here is the API's answer, read back from the store itself.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import build_app
from api.bootstrap import ensure_first_admin, open_platform
from domain.identity.project import Project
from domain.operations.operation import SUCCEEDED, Operation
from tests.api.conftest import ADMIN_PASSWORD, Api, Caller, platform_settings
from tests.api.fixtures_world import cheap_passwords  # noqa: F401 (autouse fixture)
from tests.integration.conftest import drop_schema
from tests.support.tcp_proxy import TcpProxy


@pytest.fixture
async def proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    target = urlsplit(database_url)
    opened = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await opened.start()
    yield opened
    await opened.cut()


@pytest.fixture
async def cut_off(
    proxy: TcpProxy, database_url: str, nats_url: str, tmp_path: Path
) -> AsyncIterator[Api]:
    """An API whose every database connection runs through ``proxy``."""
    schema = "down_" + secrets.token_hex(6)
    settings = platform_settings(proxy.url(database_url), nats_url, tmp_path, schema)
    try:
        async with open_platform(settings, proxy.url(database_url), nats_url) as platform:
            await ensure_first_admin(platform)
            await platform.identity.catch_up(platform.store)
            client = TestClient(TestServer(build_app(platform)))
            await client.start_server()
            try:
                api = Api(platform, client, Caller(client, "", "", None))
                api.admin = await api.login(settings.admin_email, ADMIN_PASSWORD)
                yield api
            finally:
                await proxy.restore()
                await client.close()
    finally:
        await drop_schema(database_url, schema)


async def assert_store_unavailable(response: object) -> None:
    from aiohttp import ClientResponse

    assert isinstance(response, ClientResponse)
    assert response.status == 503, await response.text()
    assert response.content_type == "application/problem+json"
    assert (await response.json())["code"] == "store_unavailable"
    assert int(response.headers["Retry-After"]) > 0


async def test_reads_and_commands_answer_503_while_the_store_is_away(
    cut_off: Api, proxy: TcpProxy
) -> None:
    api = cut_off
    owner = await api.tenant()
    made = await owner.post("/v1/projects", json={"name": "before"})
    assert made.status == 202
    operation_id = (await made.json())["operation_id"]

    document = await (await api.client.get("/v1/openapi.json")).json()
    for path, method in (
        ("/v1/projects", "get"),
        ("/v1/projects", "post"),
        ("/v1/operations/{id}", "get"),
        ("/v1/auth/login", "post"),
    ):
        assert "503" in document["paths"][path][method]["responses"], (path, method)

    await proxy.cut()
    for response in (
        await owner.get("/v1/projects"),
        await owner.get(f"/v1/operations/{operation_id}"),
        await owner.post("/v1/projects", json={"name": "during"}),
        await api.admin.get("/v1/admin/tenants"),
    ):
        await assert_store_unavailable(response)

    # Back again: the pool reconnects by itself, and nothing was half-applied.
    await proxy.restore()
    again = await owner.post("/v1/projects", json={"name": "after"})
    assert again.status == 202, await again.text()
    names = []
    for event in await api.platform.store.read_all():
        if event.topic.endswith("Project.Created"):
            names.append(event.state)
    assert len(names) == 2 and not any(b"during" in state for state in names)


async def test_a_command_that_committed_is_not_turned_into_an_error(
    cut_off: Api, proxy: TcpProxy
) -> None:
    """The store goes away right after the append commits, before the reads that follow
    it (the identity cache catching up): the answer is still the command's 202."""
    api = cut_off
    owner = await api.tenant()
    marker = f"cut-after-{secrets.token_hex(6)}"
    cut = proxy.cut_after_reply_to(marker.encode())
    made = await owner.post(
        "/v1/projects", json={"name": "committed"}, headers={"X-Request-Id": marker}
    )
    assert cut.is_set(), "the proxy never saw the append"
    assert made.status == 202, await made.text()
    body = await made.json()
    assert body["position"] > 0

    await proxy.restore()
    project = await api.platform.repository.get(body["resource_id"], Project)
    assert project.name == "committed"
    operation = await api.platform.repository.get(body["operation_id"], Operation)
    assert operation.status == SUCCEEDED
    # And the identity cache, left behind, catches up at the next command.
    later = await owner.post("/v1/projects", json={"name": "next"})
    assert later.status == 202
