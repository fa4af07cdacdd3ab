"""Helpers the API acceptance tests share: an object of any kind, sample bodies, raw calls.

``CREATORS`` says how to create an object of each id kind an endpoint can name in its path
(``Endpoint.kind``). The route-table tests look kinds up here and fail loudly on a kind
nobody taught them to create: adding a kind to the API means adding its creator here.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import msgspec.inspect as mi
import pytest
from aiohttp import ClientResponse
from argon2 import PasswordHasher

from api.routing import Endpoint
from domain.ids import new_id
from gateways import passwords
from hostd.heartbeat import Heartbeat, bucket
from tests.api.conftest import Api, Caller


@pytest.fixture(autouse=True)
def cheap_passwords(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its cheapest where imported: these tests are about the API, not the hash.

    Hashes carry their own parameters, so verifying them stays as real as ever.
    """
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", cheap)


Creator = Callable[[Api, Caller], Awaitable[str]]
"""Creates one object in the owner's tenant and returns its id, visible in the read model."""

STREAM_QUIET_SECONDS = 0.1
"""An event stream's text is what arrives until it has been quiet this long."""


def tenant_of(caller: Caller) -> str:
    assert caller.tenant_id is not None, "a tenant's caller"
    return caller.tenant_id


def unique(word: str) -> str:
    return f"{word}-{secrets.token_hex(4)}"


async def _tenant(api: Api, owner: Caller) -> str:
    await settle(api)
    return tenant_of(owner)


async def _user(api: Api, owner: Caller) -> str:
    response = await owner.post(
        "/v1/users",
        json={
            "email": f"{unique('made')}@example.com",
            "password": "made-password-1234",
            "roles": ["read-only"],
        },
    )
    return str((await api.settled(response))["resource_id"])


async def _key(api: Api, owner: Caller) -> str:
    response = await owner.post("/v1/api-keys", json={"name": unique("key")})
    return str((await api.settled(response))["resource_id"])


async def _role(api: Api, owner: Caller) -> str:
    response = await owner.post(
        "/v1/roles", json={"name": unique("role"), "actions": ["compute:*:read"]}
    )
    return str((await api.settled(response))["resource_id"])


async def _project(api: Api, owner: Caller) -> str:
    response = await owner.post("/v1/projects", json={"name": unique("project")})
    return str((await api.settled(response))["resource_id"])


async def _operation(api: Api, owner: Caller) -> str:
    response = await owner.post("/v1/projects", json={"name": unique("for-an-operation")})
    return str((await api.settled(response))["operation_id"])


async def _webhook(api: Api, owner: Caller) -> str:
    # A public address literal (no DNS needed), paused: nothing is ever delivered to it.
    response = await owner.post(
        "/v1/webhooks", json={"url": "https://93.184.216.34/hook", "paused": True}
    )
    return str((await api.settled(response))["resource_id"])


async def _image(api: Api, owner: Caller) -> str:
    pool = await create("imp", api, owner)
    response = await owner.post(
        "/v1/images",
        json={"name": unique("image"), "pool_id": pool, "size_bytes": 1, "sha256": "0" * 64},
    )
    return str((await api.settled(response))["resource_id"])


_COMPUTE: dict[str, dict[str, str]] = {}
"""Per platform (by its schema, fresh for each test): what instances are made from."""


async def _compute(api: Api) -> dict[str, str]:
    """One region with a live host, a flavor and a public image, made once per platform."""
    schema = api.platform.settings.schema
    if schema in _COMPUTE:
        return _COMPUTE[schema]
    host = await create("hst", api, api.admin)
    host_view = await (await api.admin.get(f"/v1/admin/hosts/{host}")).json()
    cluster = await (await api.admin.get(f"/v1/admin/clusters/{host_view['cluster_id']}")).json()
    region = cluster["region_id"]
    pool = await api.settled(
        await api.admin.post(
            "/v1/admin/image-pools",
            json={**await _image_pool(api), "region_id": region},
        )
    )
    image = await api.settled(
        await api.admin.post(
            "/v1/admin/images",
            json={
                "name": "tiny",
                "pool_id": pool["resource_id"],
                "location": "/var/lib/images/tiny.qcow2",
            },
        )
    )
    world = {
        "host": host,
        "region_id": region,
        "flavor_id": await create("flv", api, api.admin),
        "image_id": image["resource_id"],
    }
    return _COMPUTE.setdefault(schema, world)


async def _instance(api: Api, owner: Caller) -> str:
    world = await _compute(api)
    await heartbeat(api, world["host"])
    response = await owner.post(
        "/v1/instances",
        json={
            "name": unique("vm"),
            "region_id": world["region_id"],
            "flavor_id": world["flavor_id"],
            "image_id": world["image_id"],
        },
    )
    return str((await api.settled(response))["instance_ids"][0])


async def _subscription(api: Api, owner: Caller) -> str:
    """A monthly term (free: the platform book prices nothing) for a new instance."""
    instance_id = await _instance(api, owner)
    book = "pbk-" + "0" * 26
    if (await api.admin.get(f"/v1/admin/price-books/{book}")).status == 404:
        made = await api.admin.post(
            "/v1/admin/price-books", json={"name": "platform", "currency": "USD"}
        )
        await api.settled(made)
        published = await api.admin.post(
            f"/v1/admin/price-books/{book}/actions/publish", json={"prices": {"vcpu": "0"}}
        )
        await api.settled(published)
    response = await owner.post(
        "/v1/billing/subscriptions", json={"instance_id": instance_id, "term": "monthly"}
    )
    return str((await api.settled(response))["resource_id"])


async def _server_group(api: Api, owner: Caller) -> str:
    response = await owner.post(
        "/v1/server-groups", json={"name": unique("group"), "policy": "anti-affinity"}
    )
    return str((await api.settled(response))["resource_id"])


async def heartbeat(api: Api, host_id: str) -> None:
    """One beat from an idle host, as its daemon would send it: placement may use it."""
    kv = await bucket(api.platform.js)
    big = 64 * 1024 * 1024
    beat = Heartbeat(host_id, datetime.now(UTC), 0.0, 64, big, big)
    await kv.put(host_id, msgspec.json.encode(beat))
    await api.platform.host_health.start()
    for _ in range(250):
        if api.platform.host_health.health(host_id)[0]:
            return
        await asyncio.sleep(0.02)
    pytest.fail(f"the heartbeat of {host_id} never reached the platform")


def _inventory(path: str, body: Callable[[Api], Awaitable[dict[str, Any]]]) -> Creator:
    """The platform's own inventory (regions, hosts, …): made by the admin, whoever asks."""

    async def make(api: Api, owner: Caller) -> str:
        response = await api.admin.post(path, json=await body(api))
        return str((await api.settled(response))["resource_id"])

    return make


async def _region(api: Api) -> dict[str, Any]:
    return {"name": unique("region")}


async def _in_region(api: Api) -> dict[str, Any]:
    return {"name": unique("inv"), "region_id": await create("rgn", api, api.admin)}


async def _price_book(api: Api) -> dict[str, Any]:
    return {**await _in_region(api), "currency": "USD"}


async def _cluster(api: Api) -> dict[str, Any]:
    return {**await _in_region(api), "architecture": "x86_64", "kind": "compute"}


async def _host(api: Api) -> dict[str, Any]:
    return {
        "cluster_id": await create("cls", api, api.admin),
        "hostname": f"{unique('host')}.example",
        "capacity": {"vcpus": 8, "memory_mb": 8192, "disk_gb": 100},
    }


async def _join_token(api: Api, owner: Caller) -> str:
    cluster_id = await create("cls", api, api.admin)
    response = await api.admin.post(f"/v1/admin/clusters/{cluster_id}/join-tokens", json={})
    return str((await api.settled(response))["resource_id"])


async def _ip_pool(api: Api) -> dict[str, Any]:
    return {
        **await _in_region(api),
        "cidr": "10.9.0.0/24",
        "ranges": [{"start": "10.9.0.10", "end": "10.9.0.20"}],
        "gateway": "10.9.0.1",
        "purpose": "private",
    }


async def _image_pool(api: Api) -> dict[str, Any]:
    return {**await _in_region(api), "backend": "qcow2", "location": "/var/lib/images"}


async def _flavor(api: Api) -> dict[str, Any]:
    return {
        "name": unique("flavor"),
        "vcpus": 1,
        "memory_mb": 512,
        "disk": {"min_gb": 1, "max_gb": 10},
    }


CREATORS: dict[str, Creator] = {
    "tnt": _tenant,
    "usr": _user,
    "key": _key,
    "role": _role,
    "prj": _project,
    "op": _operation,
    "whk": _webhook,
    "img": _image,
    "i": _instance,
    "sg": _server_group,
    "sub": _subscription,
    "rgn": _inventory("/v1/admin/regions", _region),
    "cls": _inventory("/v1/admin/clusters", _cluster),
    "hst": _inventory("/v1/admin/hosts", _host),
    "jtk": _join_token,
    "ipp": _inventory("/v1/admin/ip-pools", _ip_pool),
    "imp": _inventory("/v1/admin/image-pools", _image_pool),
    "flv": _inventory("/v1/admin/flavors", _flavor),
    "pbk": _inventory("/v1/admin/price-books", _price_book),
}


async def create(kind: str, api: Api, owner: Caller) -> str:
    """An object of ``kind`` in the owner's tenant; fails the test for an unknown kind."""
    creator = CREATORS.get(kind)
    if creator is None:
        pytest.fail(
            f"no creator for id kind {kind!r}: an endpoint names it in its path; teach "
            "tests/api/fixtures_world.py CREATORS how to create one",
            pytrace=False,
        )
    return await creator(api, owner)


def kinds_in_use(table: list[Endpoint]) -> list[str]:
    for endpoint in table:
        if "{" in endpoint.path and endpoint.kind is None:
            pytest.fail(
                f"{endpoint.method} {endpoint.path} has a path parameter but no kind: the "
                "isolation tests cannot aim at it",
                pytrace=False,
            )
    return sorted({e.kind for e in table if e.kind is not None})


# -- sample bodies ----------------------------------------------------------------------

_BY_NAME: dict[str, Callable[[], Any]] = {
    "email": lambda: f"{unique('sample')}@example.com",
    "owner_email": lambda: f"{unique('sample')}@example.com",
    "contact_email": lambda: f"{unique('sample')}@example.com",
    "password": lambda: "sample-password-1234",
    "owner_password": lambda: "sample-password-1234",
    "currency": lambda: "USD",
    "sha256": lambda: "0" * 64,
}
"""Values for fields whose constraints (patterns) a type alone cannot satisfy."""


def sample_body(kind: type[msgspec.Struct]) -> dict[str, Any]:
    """A body that decodes as ``kind``: required fields only, the simplest valid values."""
    info = mi.type_info(kind)
    assert isinstance(info, mi.StructType)
    body = {
        field.encode_name: _sample(field.name, field.type, kind)
        for field in info.fields
        if field.required
    }
    try:
        msgspec.convert(body, kind)
    except msgspec.ValidationError as error:
        pytest.fail(
            f"cannot make a sample {kind.__name__} ({error}): add the field to _BY_NAME in "
            "tests/api/fixtures_world.py",
            pytrace=False,
        )
    return body


def _sample(name: str, info: mi.Type, owner: type) -> Any:
    if name in _BY_NAME:
        return _BY_NAME[name]()
    if isinstance(info, mi.Metadata):  # api.text's types: plain text samples fit them
        return _sample(name, info.type, owner)
    if isinstance(info, mi.UnionType):
        if any(isinstance(t, mi.NoneType) for t in info.types):
            return None
        return _sample(name, info.types[0], owner)
    if isinstance(info, mi.StrType):
        return _text(name, info, owner)
    if isinstance(info, mi.IntType | mi.FloatType):
        if info.ge is not None:
            return info.ge
        return 0 if info.gt is None else info.gt + 1
    if isinstance(info, mi.BoolType):
        return False
    if isinstance(info, mi.ListType | mi.SetType | mi.FrozenSetType | mi.VarTupleType):
        return [_sample(name, info.item_type, owner) for _ in range(info.min_length or 0)]
    if isinstance(info, mi.DictType):
        return {}
    if isinstance(info, mi.DateTimeType):
        return (datetime.now(UTC) + timedelta(days=1)).isoformat()
    if isinstance(info, mi.LiteralType):
        return info.values[0]
    if isinstance(info, mi.StructType):
        return sample_body(info.cls)
    pytest.fail(f"no sample for {owner.__name__}.{name} of type {info}", pytrace=False)


_PREFIXED_ID = re.compile(r"\^([a-z][a-z0-9]{0,11})-\[0-9a-hjkmnp-tv-z\]\{26\}\$")


def _text(name: str, info: mi.StrType, owner: type) -> str:
    """The first candidate the string's pattern and lengths accept."""
    plain = "s" * max(info.min_length or 0, 6)
    if info.pattern is None:
        return plain
    candidates = [plain, "sample.example", new_id("x")]
    prefixed = _PREFIXED_ID.fullmatch(info.pattern)
    if prefixed:
        candidates.insert(0, new_id(prefixed.group(1)))
    for candidate in candidates:
        if re.search(info.pattern, candidate):
            return candidate
    pytest.fail(
        f"no sample for {owner.__name__}.{name} matching {info.pattern!r}: add it to "
        "_BY_NAME in tests/api/fixtures_world.py",
        pytrace=False,
    )


# -- raw calls --------------------------------------------------------------------------


async def call(
    caller: Caller,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[ClientResponse, str]:
    """Any method, with or without a JSON body; the response and its text.

    Event streams never end: their text is what arrives until they fall quiet.
    """
    kwargs: dict[str, Any] = {"headers": caller.headers(headers)}
    if body is not None:
        kwargs["json"] = body
    response = await caller.client.request(method, path, **kwargs)
    if response.content_type == "text/event-stream":
        chunks: list[bytes] = []
        while True:
            try:
                chunk = await asyncio.wait_for(response.content.readany(), STREAM_QUIET_SECONDS)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        response.close()
        return response, b"".join(chunks).decode(errors="replace")
    return response, await response.text()


async def documents_of(api: Api, tenant_id: str) -> dict[str, tuple[int, str]]:
    """Every read-model document of a tenant: id → (version, view as text)."""
    table = f"{api.platform.settings.schema}.resource_documents"
    rows = await api.platform.store.pool.fetch(
        f"SELECT resource_id, version, view::text FROM {table} WHERE tenant_id = $1",
        tenant_id,
    )
    return {r[0]: (r[1], r[2]) for r in rows}


async def settle(api: Api) -> None:
    """Wait until the read models include everything written so far."""
    await api.platform.denials.drained()
    await api.wait_for(await api.platform.store.last_position())


async def logged(
    caller: Caller, request_ids: set[str], timeout: float = 10.0, **filters: str
) -> dict[str, dict[str, Any]]:
    """The caller's audit entries by request id, once every one of ``request_ids`` is there
    (or ``timeout`` passed): denials reach the log after their answer, so poll for them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        rows = {r["request_id"]: r for r in await audit_rows(caller, **filters)}
        if request_ids <= set(rows) or loop.time() > deadline:
            return rows
        await asyncio.sleep(0.05)


async def audit_rows(caller: Caller, **filters: str) -> list[dict[str, Any]]:
    """Every audit entry the caller may see that matches ``filters``, newest first."""
    rows: list[dict[str, Any]] = []
    params: dict[str, str] = {"limit": "500", **filters}
    while True:
        response = await caller.get("/v1/audit-events", params=params)
        assert response.status == 200, await response.text()
        page = await response.json()
        rows.extend(page["items"])
        if not page["next_page_token"]:
            return rows
        params["page_token"] = page["next_page_token"]
