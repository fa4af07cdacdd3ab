"""Image import (URL, or an admin's file in the pool's incoming directory) and export of an
instance's disk, through the API, the dispatcher, NATS and a simulated host."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from api.services.images import expire_image
from domain import clock
from hostd.fleet import SimulatedFleet
from hostd.storage.port import ImageSource
from hostd.storage.simulated import SimulatedStorage
from tests.api.compute_world import World, compute_world, one_host_fleet
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import until

POOL = "/var/lib/scloud/images"
PUBLIC_URL = "https://93.184.216.34/images/tiny.qcow2"
"""A public address literal: accepted without DNS, and never fetched by a simulated host."""


@pytest.fixture
async def world(api: Api, nats_url: str) -> AsyncIterator[tuple[World, SimulatedFleet]]:
    world = await compute_world(api)
    async with one_host_fleet(api, nats_url, world.host_id) as fleet:
        yield world, fleet


async def pool_of(api: Api, place: World) -> str:
    image = await (await api.admin.get(f"/v1/images/{place.image_id}")).json()
    return str(image["pool_id"])


def storage(fleet: SimulatedFleet, place: World) -> SimulatedStorage:
    found = fleet.daemons[place.host_id].host.storage
    assert isinstance(found, SimulatedStorage)
    return found


async def image(api: Api, caller: Caller, image_id: str) -> dict[str, Any]:
    await api.wait_for(await api.platform.store.last_position())
    view: dict[str, Any] = await (await caller.get(f"/v1/images/{image_id}")).json()
    return view


async def until_image(api: Api, caller: Caller, image_id: str, status: str) -> dict[str, Any]:
    async with asyncio.timeout(20):
        while (view := await image(api, caller, image_id))["status"] != status:
            assert view["status"] == "importing", view
            await asyncio.sleep(0.1)
    return view


def body(pool_id: str, source: dict[str, str], **more: Any) -> dict[str, Any]:
    return {
        "name": "imported",
        "pool_id": pool_id,
        "source": source,
        "architecture": "x86_64",
        "os_family": "debian",
        "min_disk_gb": 2,
        **more,
    }


async def test_a_tenant_imports_a_private_image_from_a_url_and_boots_it(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("importer")
    pool_id = await pool_of(api, place)
    accepted = await api.settled(
        await owner.post(
            "/v1/images/actions/import",
            json=body(pool_id, {"url": PUBLIC_URL}, format="qcow2"),
        )
    )
    image_id = accepted["resource_id"]
    view = await until_image(api, owner, image_id, "available")
    assert view["visibility"] == "private" and view["tenant_id"] is not None
    assert view["architecture"] == "x86_64" and view["os_family"] == "debian"
    assert view["min_disk_gb"] == 2 and view["format"] == "qcow2"
    assert view["source"] == {"url": PUBLIC_URL, "format": "qcow2"}
    assert len(view["checksum"]) == 64 and view["size_bytes"] > 0
    location = f"{POOL}/{image_id}.qcow2"
    assert storage(fleet, place).imports[location] == ImageSource(url=PUBLIC_URL, format="qcow2")
    stream = await api.platform.store.read_stream(image_id)
    assert [e.topic.rsplit(".", 1)[-1] for e in stream][-2:] == ["ImportStarted", "Imported"]

    others = await api.tenant("neighbour")
    assert (await others.get(f"/v1/images/{image_id}")).status == 404

    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "from-import",
                "region_id": place.region_id,
                "flavor_id": place.flavor_id,
                "image_id": image_id,
            },
        )
    )
    instance_id = created["instance_ids"][0]
    (running,) = await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    assert running["disk_gb"] == 2
    disk = storage(fleet, place).disks[instance_id]
    assert disk.image_location == location


async def test_an_image_still_importing_cannot_be_booted(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("impatient")
    # The daemon dies (not just its heartbeat): the import waits unpulled and never reports.
    await fleet.kill(place.host_id)
    accepted = await api.settled(
        await owner.post(
            "/v1/images/actions/import",
            json=body(await pool_of(api, place), {"url": PUBLIC_URL}),
        )
    )
    image_id = accepted["resource_id"]
    view = await image(api, owner, image_id)
    assert view["status"] == "importing" and view["deadline"] is not None
    refused = await owner.post(
        "/v1/instances",
        json={
            "name": "too-soon",
            "region_id": place.region_id,
            "flavor_id": place.flavor_id,
            "image_id": image_id,
        },
    )
    assert refused.status == 422, await refused.text()

    # The deadline passes: the import ends in error with its cause, audited as the timer's.
    later = clock.now() + timedelta(hours=1)
    assert await expire_image(api.platform.executor, image_id, later)
    view = await image(api, owner, image_id)
    assert view["status"] == "error" and "did not finish" in view["error"]
    assert not await expire_image(api.platform.executor, image_id, later)


@pytest.mark.parametrize(
    ("source", "status", "code"),
    [
        ({"url": "file:///etc/passwd"}, 422, "image_source_invalid"),
        ({"url": "ftp://93.184.216.34/tiny.qcow2"}, 422, "image_source_invalid"),
        ({"url": "https://user:secret@93.184.216.34/tiny.qcow2"}, 422, "image_source_invalid"),
        ({"url": "http://127.0.0.1:8080/healthz"}, 422, "image_source_not_public"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, 422, "image_source_not_public"),
        ({"path": f"{POOL}/incoming/tiny.raw"}, 403, "image_path_import_forbidden"),
        ({"path": "/etc/shadow"}, 403, "image_path_import_forbidden"),
        ({}, 422, "image_source_invalid"),
    ],
)
async def test_a_tenant_cannot_import_from_hosts_or_other_schemes(
    api: Api,
    world: tuple[World, SimulatedFleet],
    source: dict[str, str],
    status: int,
    code: str,
) -> None:
    place, fleet = world
    owner = await api.tenant("sneaky")
    response = await owner.post(
        "/v1/images/actions/import", json=body(await pool_of(api, place), source)
    )
    assert response.status == status, await response.text()
    assert (await response.json())["code"] == code
    assert not storage(fleet, place).imports


async def test_an_admin_imports_a_public_image_from_the_pool_s_incoming_directory(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    pool_id = await pool_of(api, place)
    for path in ("/etc/shadow", f"{POOL}/incoming/../../../etc/shadow", f"{POOL}/tiny.qcow2"):
        outside = await api.admin.post(
            "/v1/admin/images/actions/import", json=body(pool_id, {"path": path})
        )
        assert outside.status == 422, await outside.text()
        problem = await outside.json()
        assert problem["code"] == "image_source_invalid", problem
    accepted = await api.settled(
        await api.admin.post(
            "/v1/admin/images/actions/import",
            json=body(pool_id, {"path": f"{POOL}/incoming/tiny.raw"}, format="raw"),
        )
    )
    tenant = await api.tenant("user")
    view = await until_image(api, tenant, accepted["resource_id"], "available")
    assert view["visibility"] == "public" and view["tenant_id"] is None
    assert storage(fleet, place).imports[f"{POOL}/{view['id']}.qcow2"].path == (
        f"{POOL}/incoming/tiny.raw"
    )


async def test_a_stopped_instance_is_exported_as_a_private_image(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("exporter")
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "golden",
                "region_id": place.region_id,
                "flavor_id": place.flavor_id,
                "image_id": place.image_id,
                "disk_gb": 3,
            },
        )
    )
    instance_id = created["instance_ids"][0]
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    running = await owner.post(
        f"/v1/instances/{instance_id}/actions/export-image", json={"name": "snap"}
    )
    assert running.status == 409 and (await running.json())["code"] == "invalid_state"

    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 30)
    accepted = await api.settled(
        await owner.post(f"/v1/instances/{instance_id}/actions/export-image", json={"name": "snap"})
    )
    image_id = accepted["resource_id"]
    view = await until_image(api, owner, image_id, "available")
    assert view["visibility"] == "private" and view["name"] == "snap"
    assert view["min_disk_gb"] == 3 and view["source"] == {"instance_id": instance_id}
    assert storage(fleet, place).exports[f"{POOL}/{image_id}.qcow2"] == instance_id
    (still,) = await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 5)
    assert still["status"] == "stopped"

    others = await api.tenant("not-theirs")
    foreign = await others.post(
        f"/v1/instances/{instance_id}/actions/export-image", json={"name": "stolen"}
    )
    assert foreign.status == 404
