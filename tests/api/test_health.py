"""/healthz answers from memory while the store hangs; /readyz says the store does not answer."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.api.conftest import Api


async def test_liveness_answers_at_once_while_the_store_hangs_and_readiness_does_not(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    ready = await api.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["database"] == "ok"

    real = api.platform.store.last_position

    async def hangs() -> int:  # a database that stopped answering, for a few seconds
        await asyncio.sleep(3)
        return await real()

    monkeypatch.setattr(api.platform.store, "last_position", hangs)
    started = time.monotonic()
    live = await api.client.get("/healthz")
    took = time.monotonic() - started
    assert live.status == 200 and (await live.json())["status"] == "ok"
    assert took < 0.1, f"/healthz took {took * 1000:.0f} ms"
    unready = await asyncio.wait_for(api.client.get("/readyz"), 5)
    assert unready.status == 503
    assert (await unready.json())["database"] == "timeout"
    monkeypatch.undo()
