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
