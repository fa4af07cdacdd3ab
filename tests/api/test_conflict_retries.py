"""Version conflicts: retried with a growing, jittered pause; one that outlasts every retry
is answered 409 ``concurrency_conflict`` (problem+json), never a 500, and may be retried."""

from __future__ import annotations

from typing import Any

import pytest

from api.services import executor
from gateways.eventstore.records import ConcurrencyConflict
from tests.api.conftest import Api


def test_the_backoff_grows_capped_and_fully_jittered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executor.random, "uniform", lambda low, high: high)
    bounds = [executor.backoff(n) for n in range(1, executor.MAX_ATTEMPTS)]
    assert bounds[0] == executor.BACKOFF_BASE
    assert bounds == sorted(bounds) and max(bounds) == executor.BACKOFF_CAP
    assert sum(bounds) < 2.0  # the worst case of one command's waiting
    monkeypatch.setattr(executor.random, "uniform", lambda low, high: low)
    assert executor.backoff(executor.MAX_ATTEMPTS) == 0.0  # full jitter: from zero


async def test_a_conflict_outlasting_the_retries_is_a_409_problem(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = await api.tenant()
    repository = api.platform.executor.repository
    save = repository.save
    tries = 0

    async def always_conflicting(context: Any, *aggregates: Any, **kwargs: Any) -> Any:
        nonlocal tries
        if context.command_id is not None and context.command_id.endswith(":racing"):
            tries += 1
            raise ConcurrencyConflict(
                "qta-x already has version 3; reload it and try again", originator_id="qta-x"
            )
        return await save(context, *aggregates, **kwargs)

    monkeypatch.setattr(repository, "save", always_conflicting)
    monkeypatch.setattr(executor, "backoff", lambda conflicts: 0.0)
    headers = {"Idempotency-Key": "racing"}
    response = await owner.post("/v1/projects", json={"name": "contended"}, headers=headers)

    assert response.status == 409, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["code"] == "concurrency_conflict" and problem["status"] == 409
    assert problem["request_id"] == response.headers["X-Request-Id"]
    assert "retry" in problem["detail"]
    assert tries == executor.MAX_ATTEMPTS

    # Nothing was recorded under the key: the same request, retried, goes through.
    monkeypatch.setattr(repository, "save", save)
    again = await owner.post("/v1/projects", json={"name": "contended"}, headers=headers)
    assert again.status == 202, await again.text()
    assert "Idempotent-Replayed" not in again.headers
