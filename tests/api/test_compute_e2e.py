"""An instance's life through API → scheduler → NATS → hostd → outcomes, with real NATS.

The host daemon runs with the simulated drivers here; the libvirt driver passes the same
driver contract (tests/hostd/test_compute_contract.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from domain.compute import instance as instance_module
from gateways.settings import Settings
from hostd.main import run_hostd
from tests.api.compute_world import World, compute_world
from tests.api.conftest import Api, Caller


@pytest.fixture
async def world(api: Api, nats_url: str, tmp_path: Path) -> AsyncIterator[World]:
    world = await compute_world(api)
    stop = asyncio.Event()
    settings = Settings(host_driver="simulated", state_dir=tmp_path)
    daemon = asyncio.create_task(run_hostd(nats_url, world.host_id, stop, settings, every=0.5))
    await api.platform.host_health.start()
    async with asyncio.timeout(15):
        while not api.platform.host_health.health(world.host_id)[0]:
            await asyncio.sleep(0.1)
    try:
        yield world
    finally:
        stop.set()
        # The daemon finishes its open long-poll pull first; a test need not wait for it.
        done, _ = await asyncio.wait([daemon], timeout=3)
        if not done:
            daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon


async def wait_status(api: Api, caller: Caller, instance_id: str, wanted: str) -> dict[str, Any]:
    view: dict[str, Any] = {}
    async with asyncio.timeout(30):
        while view.get("status") != wanted:
            await asyncio.sleep(0.1)
            await api.wait_for(await api.platform.store.last_position())
            view = await (await caller.get(f"/v1/instances/{instance_id}")).json()
            assert view.get("status") != "error", view
    return view


async def act(api: Api, caller: Caller, instance_id: str, verb: str) -> None:
    await api.settled(await caller.post(f"/v1/instances/{instance_id}/actions/{verb}"))


async def test_an_instance_runs_stops_is_recycled_restored_and_purged(
    api: Api, world: World
) -> None:
    owner = await api.tenant("compute")
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "web",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
            },
        )
    )
    instance_id = created["instance_ids"][0]
    running = await wait_status(api, owner, instance_id, "running")
    assert running["host_id"] == world.host_id

    host = await (await api.admin.get(f"/v1/admin/hosts/{world.host_id}")).json()
    assert host["used"]["vcpus"] == 2 and host["instances"] == 1

    await act(api, owner, instance_id, "stop")
    await wait_status(api, owner, instance_id, "stopped")
    await act(api, owner, instance_id, "start")
    await wait_status(api, owner, instance_id, "running")
    await act(api, owner, instance_id, "reboot")
    await wait_status(api, owner, instance_id, "running")
    await act(api, owner, instance_id, "delete")
    await wait_status(api, owner, instance_id, "recycled")
    await act(api, owner, instance_id, "restore")
    await wait_status(api, owner, instance_id, "stopped")
    await act(api, owner, instance_id, "delete")
    await wait_status(api, owner, instance_id, "recycled")
    await act(api, owner, instance_id, "purge")
    await wait_status(api, owner, instance_id, "purged")

    await api.wait_for(await api.platform.store.last_position())
    host = await (await api.admin.get(f"/v1/admin/hosts/{world.host_id}")).json()
    assert host["used"]["vcpus"] == 0
    quotas = await (await owner.get(f"/v1/quotas?region={world.region_id}")).json()
    assert {q["kind"]: q["used"] for q in quotas["quotas"]}["instances"] == 0

    audit = await (await api.admin.get(f"/v1/audit-events?resource={instance_id}&limit=100")).json()
    kinds = {(e["actor_kind"], e["action"]) for e in audit["items"]}
    assert ("host", "compute:instance:outcome") in kinds
    assert ("user", "compute:instance:create") in kinds
    # The placement decision is recorded with its candidates and scores.
    scheduled = [
        e
        for e in await api.platform.store.read_stream(instance_id)
        if e.topic.endswith(".Scheduled")
    ]
    assert b'"host_id"' in scheduled[0].state and b'"scores"' in scheduled[0].state


async def test_no_capacity_is_refused_and_a_full_host_is_never_overbooked(
    api: Api, world: World
) -> None:
    owner = await api.tenant("full")
    body = {
        "name": "x",
        "region_id": world.region_id,
        "flavor_id": world.flavor_id,
        "image_id": world.image_id,
    }
    answers = await asyncio.gather(*(owner.post("/v1/instances", json=body) for _ in range(6)))
    statuses = sorted(r.status for r in answers)
    assert statuses == [202, 202, 202, 202, 409, 409]  # 8 vCPUs, 2 each, no overcommit
    refused = [await r.json() for r in answers if r.status == 409]
    assert {p["code"] for p in refused} == {"no_capacity"}
    await api.wait_for(await api.platform.store.last_position())
    host = await (await api.admin.get(f"/v1/admin/hosts/{world.host_id}")).json()
    assert host["used"]["vcpus"] == 8


async def test_a_step_past_its_deadline_fails_and_lets_go_of_the_host(
    api: Api, nats_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await compute_world(api)
    # A heartbeat but no daemon: the build is never answered.
    from datetime import UTC, datetime, timedelta

    import msgspec

    from hostd.heartbeat import bucket

    kv = await bucket(api.platform.js)
    beat = {
        "host_id": world.host_id,
        "at": datetime.now(tz=UTC),
        "load1": 0.1,
        "cpus": 8,
        "memory_total_kib": 16 * 2**20,
        "memory_available_kib": 8 * 2**20,
    }
    await kv.put(world.host_id, msgspec.json.encode(beat))
    await api.platform.host_health.start()
    async with asyncio.timeout(10):
        while not api.platform.host_health.health(world.host_id)[0]:
            await asyncio.sleep(0.1)
    monkeypatch.setitem(instance_module.DEADLINES, instance_module.BUILDING, timedelta(seconds=1))
    owner = await api.tenant("late")
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "slow",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
            },
        )
    )
    instance_id = created["instance_ids"][0]
    view: dict[str, Any] = {}
    async with asyncio.timeout(20):
        while view.get("status") != "error":
            await asyncio.sleep(0.2)
            await api.wait_for(await api.platform.store.last_position())
            view = await (await owner.get(f"/v1/instances/{instance_id}")).json()
    assert "building did not finish" in view["error"]
    host = await (await api.admin.get(f"/v1/admin/hosts/{world.host_id}")).json()
    assert host["used"]["vcpus"] == 0
