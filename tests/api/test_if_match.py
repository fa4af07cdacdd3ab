"""ETag is the aggregate's version; If-Match makes a stale write a 412 that changes nothing.

The generated test covers every mutation whose path names an object (``Endpoint.kind``):
a new one is covered without editing this file (a new kind needs a creator in
``tests/api/fixtures_world.py``).
"""

from __future__ import annotations

import re

from api.app import endpoints
from api.routing import Endpoint
from domain.identity.role import Role
from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    call,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    create,
    sample_body,
    settle,
)

_ETAG = re.compile(r'^"(\d+)"$')


def read_of(endpoint: Endpoint, table: list[Endpoint]) -> Endpoint:
    """The GET that shows what ``endpoint`` changes: the longest path it extends."""
    reads = [e for e in table if e.method == "GET" and e.kind == endpoint.kind]
    extended = [e for e in reads if endpoint.path.startswith(e.path)]
    if extended:
        return max(extended, key=lambda e: len(e.path))
    return min((e for e in reads if e.path.endswith("/{id}")), key=lambda e: len(e.path))


async def read(caller: Caller, endpoint: Endpoint, object_id: str) -> tuple[int, str]:
    """The version the ETag gives, and the body."""
    response, text = await call(caller, "GET", endpoint.path.replace("{id}", object_id))
    assert response.status == 200, f"GET {endpoint.path}: {text}"
    return version_of(response.headers.get("ETag", ""), endpoint), text


def version_of(etag: str, endpoint: Endpoint) -> int:
    match = _ETAG.match(etag)
    assert match, f"GET {endpoint.path} gives no ETag (got {etag!r}) for If-Match to name"
    return int(match.group(1))


async def readable(
    api: Api, owner: Caller, caller: Caller, kind: str, shown_by: Endpoint, known: dict[str, str]
) -> str:
    """An object of ``kind`` the caller can read: the last one used, or a new one."""
    if kind in known:
        response, _ = await call(caller, "GET", shown_by.path.replace("{id}", known[kind]))
        if response.status == 200:
            return known[kind]
    known[kind] = await create(kind, api, owner)
    return known[kind]


async def test_every_mutation_of_an_object_honours_if_match(api: Api) -> None:
    table = endpoints()
    owner = await api.tenant()
    tried = 0
    known: dict[str, str] = {}
    for endpoint in table:
        if not endpoint.mutation or endpoint.kind is None or endpoint.path.count("{") > 1:
            continue
        staff = endpoint.action is not None and endpoint.action.startswith("admin:")
        caller = api.admin if staff else owner
        shown_by = read_of(endpoint, table)
        object_id = await readable(api, owner, caller, endpoint.kind, shown_by, known)
        path = endpoint.path.replace("{id}", object_id)
        body = sample_body(endpoint.body) if endpoint.body is not None else None
        where = f"{endpoint.method} {endpoint.path}"

        version, _ = await read(caller, shown_by, object_id)
        stale = await caller.client.request(
            endpoint.method,
            path,
            json=body,
            headers=caller.headers({"If-Match": f'"{version + 7}"'}),
        )
        assert stale.status == 412, f"{where} with a stale If-Match: {await stale.text()}"
        assert stale.content_type == "application/problem+json", where
        assert (await stale.json())["code"] == "precondition_failed", where
        await settle(api)
        # The version is the aggregate's: unchanged means nothing was written to it. (The
        # body may move on its own: a webhook's delivery progress, say.)
        assert (await read(caller, shown_by, object_id))[0] == version, where

        current = await caller.client.request(
            endpoint.method,
            path,
            json=body,
            headers=caller.headers({"If-Match": f'"{version}"'}),
        )
        # The current version passes the precondition; the command may still refuse on its
        # own terms (unfreezing an active tenant), but never with 412.
        assert current.status not in (412, 500), f"{where}: {await current.text()}"
        if current.status == 202:
            await api.settled(current)  # (an empty PATCH may change nothing at all)
        tried += 1
    assert tried >= 5


async def test_etag_is_the_aggregate_version(api: Api) -> None:
    owner = await api.tenant()
    role = await api.settled(
        await owner.post("/v1/roles", json={"name": "ops", "actions": ["compute:*:read"]})
    )
    role_id = role["resource_id"]
    for expected in (1, 2, 3):
        response = await owner.get(f"/v1/roles/{role_id}")
        assert response.headers["ETag"] == f'"{expected}"'
        aggregate = await api.platform.repository.get(role_id, Role)
        assert aggregate.version == expected
        changed = await owner.put(
            f"/v1/roles/{role_id}/actions",
            json={"actions": ["compute:*:read", f"storage:{expected}:read"]},
            headers={"If-Match": response.headers["ETag"]},
        )
        await api.settled(changed)


async def test_stale_if_match_on_a_role_leaves_it_as_it_was(api: Api) -> None:
    owner = await api.tenant()
    role = await api.settled(
        await owner.post("/v1/roles", json={"name": "ops", "actions": ["compute:*:read"]})
    )
    path = f"/v1/roles/{role['resource_id']}"
    first = await owner.get(path)
    await api.settled(
        await owner.put(f"{path}/actions", json={"actions": ["network:*:read"]})
    )  # someone else's write in between
    lost = await owner.put(
        f"{path}/actions",
        json={"actions": ["*"]},
        headers={"If-Match": first.headers["ETag"]},
    )
    assert lost.status == 412
    problem = await lost.json()
    assert problem["code"] == "precondition_failed"
    assert problem["request_id"] == lost.headers["X-Request-Id"]
    await settle(api)
    now = await owner.get(path)
    assert (await now.json())["actions"] == ["network:*:read"]
    assert now.headers["ETag"] == '"2"'
    events = await api.platform.store.read_stream(role["resource_id"])
    assert [e.originator_version for e in events] == [1, 2]
    # A weak ETag of the current version is honoured too.
    weak = await owner.put(
        f"{path}/actions", json={"actions": ["*:*:read"]}, headers={"If-Match": 'W/"2"'}
    )
    assert weak.status == 202, await weak.text()
