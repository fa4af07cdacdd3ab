"""Denied requests: recorded off the request path, in batches, limited per source, never lost
on a clean shutdown, and in the log of the tenant whose resource was aimed at."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from typing import Any

import aiohttp
import pytest

from api.services.denials import DROPPED_CODE
from domain.ids import new_id
from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    audit_rows,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    create,
    logged,
    settle,
    tenant_of,
)

_DROPPED = re.compile(r"^(\d+) more denied requests from (\S+) ")
OPERATION_CREATED = "domain.operations.operation:Operation.Created"


async def anonymous_gets(api: Api, count: int, prefix: str) -> set[str]:
    """``count`` unsigned GETs, one after the other; their request ids."""
    ids = {f"{prefix}-{n}" for n in range(count)}
    for request_id in sorted(ids):
        response = await api.client.get("/v1/projects", headers={"X-Request-Id": request_id})
        assert response.status == 401
    return ids


async def denials_since(api: Api, position: int, request_ids: set[str]) -> list[Any]:
    """The denied operations appended after ``position`` for these requests."""
    events = await api.platform.store.read_all(after=position, limit=10**6)
    return [
        e for e in events if e.topic == OPERATION_CREATED and e.envelope().request_id in request_ids
    ]


def dropped(rows: list[dict[str, Any]], source: str = "127.0.0.1") -> int:
    """How many denials of ``source`` the log counts without recording them one by one."""
    total = 0
    for row in rows:
        match = _DROPPED.match(row["error_detail"] or "")
        if row["error_code"] == DROPPED_CODE and match and match.group(2) == source:
            assert row["source"] == source and row["actor_kind"] == "system"
            total += int(match.group(1))
    return total


async def counted(
    caller: Caller, request_ids: set[str], total: int, source: str = "127.0.0.1"
) -> tuple[dict[str, dict[str, Any]], int]:
    """The log's denials of these requests and the count of the others, once they add up to
    ``total`` (a count is recorded when its source's window ends: poll, bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while True:
        rows = await audit_rows(caller, outcome="denied")
        one_by_one = {r["request_id"]: r for r in rows if r["request_id"] in request_ids}
        if len(one_by_one) + dropped(rows, source) >= total or loop.time() > deadline:
            return one_by_one, dropped(rows, source)
        await asyncio.sleep(0.1)


@pytest.mark.parametrize(
    "platform_overrides", [{"denials_per_source": 1_000, "denials_linger_seconds": 1.0}]
)
async def test_200_anonymous_gets_take_far_fewer_than_200_appends(api: Api) -> None:
    start = await api.platform.store.last_position()
    ids = await anonymous_gets(api, 200, "anon")
    rows = await logged(api.admin, ids, outcome="denied")
    assert ids <= set(rows), "every denial within the budget is in the log"
    events = await denials_since(api, start, ids)
    assert len(events) == 200
    # Events written by one transaction share its recorded_at: count the transactions.
    appends = {e.recorded_at for e in events}
    assert len(appends) <= 20, f"200 denials took {len(appends)} appends"


@pytest.mark.parametrize(
    "platform_overrides", [{"denials_per_source": 5, "denials_window_seconds": 2.0}]
)
async def test_each_source_has_a_budget_and_the_rest_is_counted(api: Api) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    ids = await anonymous_gets(api, 200, "flood")
    elapsed = loop.time() - began
    one_by_one, count = await counted(api.admin, ids, 200)
    windows = int(elapsed // 2.0) + 2
    assert 5 <= len(one_by_one) <= 5 * windows, f"{len(one_by_one)} recorded one by one"
    assert len(one_by_one) + count == 200, "every denial is recorded or counted"
    assert all(r["source"] == "127.0.0.1" for r in one_by_one.values())

    # Another address has a budget of its own, however spent the first one is.
    other = {f"other-{n}" for n in range(3)}
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        for request_id in sorted(other):
            url = api.client.make_url("/v1/projects")
            async with session.get(url, headers={"X-Request-Id": request_id}) as response:
                assert response.status == 401
    rows = await logged(api.admin, other, outcome="denied")
    assert {rows[r]["source"] for r in other} == {"127.0.0.2"}


@pytest.mark.parametrize(
    "platform_overrides", [{"denials_per_source": 3, "denials_window_seconds": 1.5}]
)
async def test_a_probe_of_another_tenants_id_is_in_that_tenants_log(api: Api) -> None:
    victim = await api.tenant()
    project = await create("prj", api, victim)
    prober = await api.tenant()
    await settle(api)
    ids = set()
    for n in range(10):
        ids.add(f"probe-{n}")
        response = await prober.get(
            f"/v1/projects/{project}", headers={"X-Request-Id": f"probe-{n}"}
        )
        assert response.status == 404
    one_by_one, count = await counted(victim, ids, 10)
    assert one_by_one and len(one_by_one) + count == 10
    for row in one_by_one.values():
        assert row["tenant_id"] == tenant_of(victim) and row["resource_id"] == project
        assert row["actor_id"] == prober.user_id and row["action"] == "iam:project:read"
    counts = [
        r for r in await audit_rows(victim, outcome="denied") if r["error_code"] == DROPPED_CODE
    ]
    assert counts and {r["tenant_id"] for r in counts} == {tenant_of(victim)}
    # The prober's own log shows nothing of it, as for an id that exists nowhere.
    await settle(api)
    assert not {r["request_id"] for r in await audit_rows(prober)} & ids
    assert not [r for r in await audit_rows(prober) if r["error_code"] == DROPPED_CODE]


async def test_a_probe_of_an_operation_is_in_its_tenants_log(api: Api) -> None:
    """Operations have no document: their tenant is found from their stream's first event."""
    victim = await api.tenant()
    operation = await create("op", api, victim)
    prober = await api.tenant()
    response = await prober.get(f"/v1/operations/{operation}", headers={"X-Request-Id": "op-probe"})
    assert response.status == 404
    row = (await logged(victim, {"op-probe"}, outcome="denied"))["op-probe"]
    assert row["resource_id"] == operation and row["tenant_id"] == tenant_of(victim)
    assert row["actor_id"] == prober.user_id


async def test_an_existing_foreign_id_is_answered_as_fast_as_a_missing_one(api: Api) -> None:
    victim = await api.tenant()
    project = await create("prj", api, victim)
    prober = await api.tenant()
    await settle(api)
    timings: dict[str, list[float]] = {"real": [], "missing": []}
    for n in range(60):
        # Interleaved, so that whatever else the machine does weighs on both alike.
        for kind, target in (("real", project), ("missing", new_id("prj"))):
            began = time.perf_counter()
            response = await prober.get(f"/v1/projects/{target}")
            await response.read()
            elapsed = time.perf_counter() - began
            assert response.status == 404
            if n >= 10:  # the first ones warm caches and connections up
                timings[kind].append(elapsed)
    real, missing = (statistics.median(timings[k]) for k in ("real", "missing"))
    assert real < missing * 1.3, f"foreign {real * 1e3:.2f} ms, missing {missing * 1e3:.2f} ms"


@pytest.mark.parametrize(
    "platform_overrides",
    [{"denials_per_source": 2, "denials_window_seconds": 3600.0, "denials_linger_seconds": 3600.0}],
)
async def test_a_clean_shutdown_records_what_is_still_queued(api: Api) -> None:
    start = await api.platform.store.last_position()
    ids = await anonymous_gets(api, 7, "late")
    # Nothing can have been appended yet: the first denial waits an hour for company.
    assert not await denials_since(api, start, ids)
    await api.platform.denials.close()
    events = await denials_since(api, start, ids)
    assert len(events) == 2, "the two within the budget, appended on close"
    await api.wait_for(await api.platform.store.last_position())
    rows = await audit_rows(api.admin, outcome="denied")
    assert len(ids & {r["request_id"] for r in rows}) == 2
    assert dropped(rows) == 5, "the count of the other five, appended on close"


@pytest.mark.parametrize("platform_overrides", [{"denials_linger_seconds": 3600.0}])
async def test_a_denied_request_writes_nothing_while_its_caller_waits(api: Api) -> None:
    """No append on the request path: that write was the oracle (and the amplifier)."""
    victim = await api.tenant()
    project = await create("prj", api, victim)
    prober = await api.tenant()
    await settle(api)
    head = await api.platform.store.last_position()
    assert (await prober.get(f"/v1/projects/{project}")).status == 404
    assert (await api.client.get("/v1/projects")).status == 401
    assert await api.platform.store.last_position() == head
