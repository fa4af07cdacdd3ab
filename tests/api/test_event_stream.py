"""SSE: a tenant's own events, resumable with Last-Event-ID without loss or duplicates."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.api.conftest import Api, Caller


async def read_events(caller: Caller, count: int, last_event_id: str | None = None) -> list[Any]:
    """Open the stream, take ``count`` events, then hang up."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    response = await caller.get("/v1/events", headers=headers)
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events: list[Any] = []
    current: dict[str, str] = {}
    async with asyncio.timeout(20):
        while len(events) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line.startswith(":"):
                continue
            if not line:
                if current:
                    events.append({"id": current["id"], **json.loads(current["data"])})
                    current = {}
                continue
            field, _, value = line.partition(": ")
            current[field] = value
    response.close()
    return events


async def test_reconnect_with_last_event_id_loses_and_duplicates_nothing(api: Api) -> None:
    owner = await api.tenant("sse")
    stranger = await api.tenant("other")
    for n in range(3):
        await api.settled(await owner.post("/v1/projects", json={"name": f"before-{n}"}))
    first = await read_events(owner, 4)
    # Meanwhile: more of ours, and the other tenant's, while nobody listens.
    for n in range(3):
        await api.settled(await owner.post("/v1/projects", json={"name": f"after-{n}"}))
        await api.settled(await stranger.post("/v1/projects", json={"name": f"theirs-{n}"}))
    ours = [
        e.position
        for e in await api.platform.store.read_all(limit=10**6, tenant_id=owner.tenant_id)
    ]
    rest = await read_events(owner, len(ours) - len(first), last_event_id=first[-1]["id"])
    received = [e["position"] for e in first + rest]
    assert received == ours  # everything of ours, in order, once
    assert {e["tenant_id"] for e in first + rest} == {owner.tenant_id}
    assert [int(e["id"]) for e in first + rest] == received


async def test_types_filter_and_after(api: Api) -> None:
    owner = await api.tenant("filtered")
    created = await api.settled(await owner.post("/v1/projects", json={"name": "p"}))
    response = await owner.get(f"/v1/events?after={created['position'] - 1}&types=Created")
    assert response.status == 200
    line = b""
    async with asyncio.timeout(10):
        while not line.startswith(b"data: "):
            line = await response.content.readline()
    event = json.loads(line[len(b"data: ") :])
    assert event["type"] == "Created"
    assert event["position"] >= created["position"] - 1
    response.close()


async def test_stream_needs_permission(api: Api) -> None:
    owner = await api.tenant("perm")
    billing = await api.sub_account(owner, ["billing"])
    response = await billing.get("/v1/events")
    assert response.status == 403


async def read_raw(caller: Caller, until: str, path: str = "/v1/events") -> tuple[bytes, list[Any]]:
    """The stream's bytes and its events, up to the first event of resource ``until``."""
    response = await caller.get(path)
    assert response.status == 200
    raw, events = b"", list[Any]()
    async with asyncio.timeout(20):
        while not events or events[-1]["resource_id"] != until:
            line = await response.content.readline()
            raw += line
            if line.startswith(b"data: "):
                events.append(json.loads(line[len(b"data: ") :]))
    response.close()
    return raw, events


async def test_no_password_hash_reaches_the_stream(api: Api) -> None:
    """A read-only sub-account streams its tenant's events: its owner's hash is not in them."""
    owner = await api.tenant("hashes")
    reader = await api.sub_account(owner, ["read-only"])
    hashes = []
    for user_id in (owner.user_id, reader.user_id):
        created = (await api.platform.store.read_stream(user_id))[0]
        hashes.append(json.loads(created.state)["password_hash"])
    assert all(h.startswith("$argon2") for h in hashes)
    sentinel = await api.settled(await owner.post("/v1/projects", json={"name": "last"}))
    raw, events = await read_raw(reader, sentinel["resource_id"])
    assert not [h for h in hashes if h.encode() in raw]
    users = {e["resource_id"]: e for e in events if e["topic"].endswith(":User.Created")}
    assert set(users) == {owner.user_id, reader.user_id}
    for event in users.values():
        assert event["data"]["password_hash"] == "[redacted]"
        assert event["redacted"] == ["password_hash"]
        assert "@" in event["data"]["email"]  # the rest is sent as stored
    assert all("redacted" not in e for e in events if e["topic"].endswith("Project.Created"))


async def test_a_project_scoped_sub_account_sees_only_its_projects(api: Api) -> None:
    owner = await api.tenant("scoped")
    mine = await api.settled(await owner.post("/v1/projects", json={"name": "mine"}))
    theirs = await api.settled(await owner.post("/v1/projects", json={"name": "theirs"}))
    groups = {}
    for name, project in (("in-mine", mine), ("in-theirs", theirs), ("in-none", None)):
        body = {"name": name, "policy": "anti-affinity"}
        if project is not None:
            body["project_id"] = project["resource_id"]
        groups[name] = (await api.settled(await owner.post("/v1/server-groups", json=body)))[
            "resource_id"
        ]
    scoped = await api.sub_account(owner, ["read-only"], projects=[mine["resource_id"]])
    body = {"name": "last", "policy": "affinity", "project_id": mine["resource_id"]}
    last = (await api.settled(await owner.post("/v1/server-groups", json=body)))["resource_id"]
    _, events = await read_raw(scoped, last)
    inside = {mine["resource_id"], groups["in-mine"], last}
    expected = [
        e.position
        for e in await api.platform.store.read_all(limit=10**6, tenant_id=owner.tenant_id)
        if e.originator_id in inside
    ]
    assert [e["position"] for e in events] == expected  # all of them, in order, nothing else
    assert {e["resource_id"] for e in events} == inside
    # The owner, unscoped, sees the rest of the tenant too.
    _, everything = await read_raw(owner, last)
    seen = {e["resource_id"] for e in everything}
    assert {theirs["resource_id"], groups["in-theirs"], groups["in-none"], scoped.user_id} <= seen
