"""Token and API key validation read memory only: the hot path never queries PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web_protocol

from tests.api.conftest import Api, Caller

POOL_METHODS = ("acquire", "fetch", "fetchrow", "fetchval", "execute")
REQUESTS = 40
_SERVER_FILE = web_protocol.__file__


def _serving_a_request() -> bool:
    """Is aiohttp's server handling a request further up this stack?

    An awaited coroutine's frame links back to the coroutine awaiting it, so a query made
    anywhere under a request (middlewares, authentication, the handler) finds the server's
    frame; the platform's background tasks (projections, the identity follower, the group
    committer) do not, and their polling stays out of the count. What the hot path might
    hand to a background task instead is caught by the store's position not moving.
    """
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == _SERVER_FILE:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


class PoolCalls:
    """Calls on one asyncpg pool made while serving a request, by method name."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.calls: list[str] = []

    def counting(self, name: str) -> Callable[..., Any]:
        original = getattr(asyncpg.Pool, name)

        def counted(pool: asyncpg.Pool, *args: Any, **kwargs: Any) -> Any:
            if pool is self.pool and _serving_a_request():
                self.calls.append(name)
            return original(pool, *args, **kwargs)

        return counted


@pytest.fixture
def pool_calls(api: Api, monkeypatch: pytest.MonkeyPatch) -> Iterator[PoolCalls]:
    # asyncpg.Pool has __slots__: its methods are replaced on the class, counting ours only.
    counter = PoolCalls(api.platform.store.pool)
    for name in POOL_METHODS:
        monkeypatch.setattr(asyncpg.Pool, name, counter.counting(name))
    yield counter


async def _api_key(api: Api, owner: Caller, actions: list[str] | None = None) -> Caller:
    response = await owner.post("/v1/api-keys", json={"name": "bench", "actions": actions})
    body = await api.settled(response)
    return Caller(owner.client, body["api_key"], owner.user_id, owner.tenant_id)


async def _me_many_times(caller: Caller, expected_api_key: bool) -> None:
    async def one() -> None:
        response = await caller.get("/v1/me")
        assert response.status == 200, await response.text()
        body = await response.json()
        assert body["user_id"] == caller.user_id
        assert (body["api_key_id"] is not None) is expected_api_key

    await asyncio.gather(*(one() for _ in range(REQUESTS)))


async def test_tokens_and_api_keys_are_checked_without_a_database_query(
    api: Api, pool_calls: PoolCalls
) -> None:
    owner = await api.tenant()
    role = await api.settled(
        await owner.post("/v1/roles", json={"name": "viewer", "actions": ["iam:user:read"]})
    )
    sub_account = await api.sub_account(owner, ["read-only"], custom_roles=[role["resource_id"]])
    full_key = await _api_key(api, owner)
    # A narrow key reads /v1/me only when it lists that self-service action.
    narrow_key = await _api_key(api, owner, ["iam:user:read", "self:session:read"])
    callers = [
        (api.admin, False),
        (owner, False),
        (sub_account, False),
        (full_key, True),
        (narrow_key, True),
    ]
    position = await api.platform.store.last_position()
    pool_calls.calls.clear()

    for caller, with_key in callers:
        await _me_many_times(caller, with_key)

    assert pool_calls.calls == []
    assert await api.platform.store.last_position() == position, "the hot path appended events"


async def test_the_counter_sees_a_list_endpoint_query(api: Api, pool_calls: PoolCalls) -> None:
    owner = await api.tenant()
    key = await _api_key(api, owner)
    pool_calls.calls.clear()

    for caller in (owner, key):
        response = await caller.get("/v1/users")
        assert response.status == 200, await response.text()

    assert len(pool_calls.calls) >= 2
    assert set(pool_calls.calls) <= set(POOL_METHODS)
