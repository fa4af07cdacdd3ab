"""/healthz answers from memory even with the store's pool taken; /readyz says the store
does not answer."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.api.conftest import Api


async def test_liveness_answers_at_once_while_the_pool_is_taken_and_readiness_does_not(
    api: Api,
) -> None:
    ready = await api.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "ok"
    pool = api.platform.store.pool
    async with contextlib.AsyncExitStack() as held:
        # A stalled worker's waiting reads, or a database that stopped answering.
        for _ in range(pool.get_max_size()):
            await held.enter_async_context(pool.acquire())
        started = time.monotonic()
        live = await api.client.get("/healthz")
        took = time.monotonic() - started
        assert live.status == 200 and (await live.json())["status"] == "ok"
        assert took < 0.1, f"/healthz took {took * 1000:.0f} ms"
        unready = await asyncio.wait_for(api.client.get("/readyz"), 5)
        assert unready.status == 503
        assert (await unready.json())["database"] == "timeout"
