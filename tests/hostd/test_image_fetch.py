"""A host fetches a tenant's URL to public addresses only, at every connection.

A hostile resolver stands in for a rebinding DNS server: it answers a loopback address for
every name, while the API's own check was answered a public one. Nothing here leaves the
machine: the only server is on 127.0.0.1, and it counts what reaches it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from nats.aio.client import Client

from api.services.images import check_public_source
from domain.compute.image import ImageSourceNotPublic
from gateways.bus.image_uploads import ImageUploads, UploadMissing
from gateways.public_addresses import Address
from hostd.storage.port import ImageFetchFailed, ImageSource
from hostd.storage.qcow2 import Qcow2Storage

SECRET = b"internal service: the admin token is hunter2 " * 20


class Loopback(AbstractResolver):
    """Answers 127.0.0.1 for every name, as a rebound name would."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(
                hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET, proto=0, flags=0
            )
        ]

    async def close(self) -> None:
        pass


class Internal:
    """A loopback 'internal service': files, a redirect to itself, and a chatty error."""

    def __init__(self, pool: Path) -> None:
        self.hits = 0
        self.pool = pool
        self.port = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if request.path == "/redirect":
            raise web.HTTPFound(f"http://127.0.0.1:{self.port}/disk.raw")
        if request.path == "/secret":
            return web.Response(status=500, body=SECRET)
        if request.path == "/text":
            return web.Response(body=SECRET)
        return web.FileResponse(self.pool / "incoming" / "disk.raw")


@pytest.fixture
async def internal(tmp_path: Path) -> AsyncIterator[Internal]:
    pool = tmp_path / "pool"
    (pool / "incoming").mkdir(parents=True)
    (pool / "incoming" / "disk.raw").write_bytes(bytes(1024**2))
    server = Internal(pool)
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server
    finally:
        await runner.cleanup()


def storage(tmp_path: Path) -> Qcow2Storage:
    return Qcow2Storage(tmp_path / "state", pools=[tmp_path / "pool"], resolver=Loopback())


async def refused(store: Qcow2Storage, server: Internal, source: ImageSource) -> str:
    with pytest.raises(ImageFetchFailed) as failure:
        await store.import_image("img-x", source=source, pool=str(server.pool))
    assert not (server.pool / "img-x.qcow2").exists()
    assert sorted(p.name for p in server.pool.iterdir()) == ["incoming"]
    return str(failure.value)


async def test_a_name_rebound_to_loopback_after_the_api_s_check_is_refused_by_the_host(
    tmp_path: Path, internal: Internal
) -> None:
    url = f"http://images.example:{internal.port}/disk.raw"

    async def public(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address("93.184.216.34")]

    await check_public_source(url, resolver=public)  # what the API saw: a public address
    cause = await refused(storage(tmp_path), internal, ImageSource(url=url))
    assert cause == "image_source_not_public: the host name resolves to a loopback address"
    assert internal.hits == 0, "the host never connected"

    # The same name and resolver for a staff import (private allowed): fetched, so it was
    # the public-only judgement, not the resolver, that refused the tenant's.
    made = await storage(tmp_path).import_image(
        "img-staff", source=ImageSource(url=url, public_only=False), pool=str(internal.pool)
    )
    assert made.virtual_size_bytes == 1024**2 and internal.hits == 1


async def test_the_api_refuses_a_name_that_resolves_to_loopback_when_it_is_given() -> None:
    async def loopback(host: str, port: int) -> list[Address]:
        return [ipaddress.ip_address("127.0.0.1")]

    with pytest.raises(ImageSourceNotPublic):
        await check_public_source("https://images.example/disk.raw", resolver=loopback)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "[::1]", "169.254.169.254", "[::ffff:127.0.0.1]", "10.1.2.3"]
)
async def test_literal_internal_addresses_are_refused_before_connecting(
    tmp_path: Path, internal: Internal, host: str
) -> None:
    source = ImageSource(url=f"http://{host}:{internal.port}/disk.raw")
    cause = await refused(storage(tmp_path), internal, source)
    assert cause.startswith("image_source_not_public: the address is ")
    assert internal.hits == 0


async def test_redirects_are_refused_not_followed(tmp_path: Path, internal: Internal) -> None:
    source = ImageSource(url=f"http://127.0.0.1:{internal.port}/redirect", public_only=False)
    cause = await refused(storage(tmp_path), internal, source)
    assert cause == (
        "image_source_redirected: HTTP 302: redirects are not followed; give the final URL"
    )
    assert internal.hits == 1


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/secret", "image_source_http_error: HTTP 500"),
        ("/text", "image_source_unreadable: the source is not a qcow2 image"),
    ],
)
async def test_a_failed_fetch_says_a_code_and_a_short_cause_never_the_reply(
    tmp_path: Path, internal: Internal, path: str, expected: str
) -> None:
    source = ImageSource(
        url=f"http://127.0.0.1:{internal.port}{path}", format="qcow2", public_only=False
    )
    cause = await refused(storage(tmp_path), internal, source)
    assert cause == expected
    assert "hunter2" not in cause and str(tmp_path) not in cause


async def test_a_source_larger_than_the_limit_is_refused(
    tmp_path: Path, internal: Internal
) -> None:
    small = Qcow2Storage(
        tmp_path / "state", pools=[tmp_path / "pool"], max_download=1000, resolver=Loopback()
    )
    source = ImageSource(url=f"http://127.0.0.1:{internal.port}/disk.raw", public_only=False)
    assert await refused(small, internal, source) == (
        "image_source_too_large: larger than 1000 bytes"
    )


async def test_an_unreachable_source_is_a_short_cause(tmp_path: Path, internal: Internal) -> None:
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    source = ImageSource(url=f"http://127.0.0.1:{port}/disk.raw", public_only=False)
    assert await refused(storage(tmp_path), internal, source) == (
        "image_source_unreachable: cannot connect"
    )


# -- uploads: staged by the API in a NATS object store, fetched by the host ---------------


@pytest.fixture
async def uploads(nc: Client) -> AsyncIterator[ImageUploads]:
    bucket = f"T{uuid.uuid4().hex[:10]}_UPLOADS"
    yield ImageUploads(nc.jetstream(), bucket=bucket)
    with contextlib.suppress(Exception):
        await nc.jetstream().delete_object_store(bucket)


async def test_an_upload_is_fetched_checked_converted_and_unstaged(
    tmp_path: Path, internal: Internal, uploads: ImageUploads
) -> None:
    data = (internal.pool / "incoming" / "disk.raw").read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    await uploads.stage("img-up", io.BytesIO(data))
    store = Qcow2Storage(tmp_path / "state", pools=[internal.pool], uploads=uploads)
    source = ImageSource(upload="img-up", sha256=digest, format="raw")
    made = await store.import_image("img-up", source=source, pool=str(internal.pool))
    assert made.location == str(internal.pool / "img-up.qcow2")
    assert made.virtual_size_bytes == len(data)
    with pytest.raises(UploadMissing):  # in the pool now: no longer staged
        await uploads.fetch("img-up", tmp_path / "again")
    # Redelivered after that: the image is there, reported again without the upload.
    assert await store.import_image("img-up", source=source, pool=str(internal.pool)) == made


async def test_staged_bytes_that_are_not_the_declared_ones_are_refused(
    tmp_path: Path, internal: Internal, uploads: ImageUploads
) -> None:
    await uploads.stage("img-bad", io.BytesIO(b"not what was declared"))
    store = Qcow2Storage(tmp_path / "state", pools=[internal.pool], uploads=uploads)
    wrong = ImageSource(upload="img-bad", sha256="0" * 64)
    cause = await refused(store, internal, wrong)
    assert cause == "image_upload_mismatch: the staged bytes' SHA-256 differs"
    missing = ImageSource(upload="img-never", sha256="0" * 64)
    assert await refused(store, internal, missing) == (
        "image_upload_missing: the upload is not staged"
    )
