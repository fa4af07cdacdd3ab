"""Backpressure: creates answer 429 with Retry-After while builds are behind, and a tenant
past its request rate is answered 429 too; nothing refused is half done."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.api.compute_world import compute_world, one_host_fleet
from tests.api.conftest import Api


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"max_waiting_builds": 2, "tenant_requests_per_second": 20}


async def test_creates_are_refused_while_builds_wait_and_a_retry_of_an_accepted_one_is_answered(
    api: Api, nats_url: str
) -> None:
    world = await compute_world(api)
    owner = await api.tenant("bp")
    body = {"region_id": world.region_id, "flavor_id": world.flavor_id, "image_id": world.image_id}
    # The host beats, then its daemon goes: what is placed on it waits to be built.
    async with one_host_fleet(api, nats_url, world.host_id):
        pass
    first = await owner.post(
        "/v1/instances", json={**body, "name": "a", "count": 2}, headers={"Idempotency-Key": "k1"}
    )
    accepted = await api.settled(first)
    # The build queue is read at most once a second: the next read sees both waiting.
    api.platform.build_backpressure._read_at = float("-inf")
    refused = await owner.post("/v1/instances", json={**body, "name": "b"})
    assert refused.status == 429, await refused.text()
    problem = await refused.json()
    assert problem["code"] == "overloaded" and "2 instances are waiting" in problem["detail"]
    assert int(refused.headers["Retry-After"]) >= 1
    listed = await (await owner.get("/v1/instances")).json()
    assert len(listed["items"]) == 2  # the refused create made nothing

    again = await owner.post(
        "/v1/instances", json={**body, "name": "a", "count": 2}, headers={"Idempotency-Key": "k1"}
    )
    assert again.status == 202, await again.text()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await again.json())["instance_ids"] == accepted["instance_ids"]


async def test_a_tenant_past_its_request_rate_is_answered_429_and_others_are_not(api: Api) -> None:
    busy, quiet = await api.tenant("busy"), await api.tenant("quiet")
    answers = await asyncio.gather(*(busy.get("/v1/instances") for _ in range(60)))
    statuses = [answer.status for answer in answers]
    assert set(statuses) == {200, 429} and statuses.count(200) <= 40, statuses
    refused = next(answer for answer in answers if answer.status == 429)
    assert (await refused.json())["code"] == "too_many_requests"
    assert refused.headers["Retry-After"] == "1"
    assert (await quiet.get("/v1/instances")).status == 200
