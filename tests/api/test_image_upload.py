"""Image upload, and registration of host paths kept to staff inside the pool's directory.

Upload: ``POST /v1/images`` makes a private image ``uploading`` with the size and SHA-256
its bytes must have; ``PUT /v1/images/{id}/file`` streams them, checked, into the
platform's upload object store (NATS), and a host of the pool's region converts them into
the pool as it would an import.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from api.services.images import expire_image
from domain import clock
from gateways.bus.image_uploads import ImageUploads
from hostd.fleet import SimulatedFleet
from hostd.storage.port import ImageSource
from tests.api.compute_world import World, compute_world, one_host_fleet
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import until
from tests.api.test_image_import import POOL, image, pool_of, storage, until_image

DISK = b"\xeb\x63" + bytes(64 * 1024 - 2)
DIGEST = hashlib.sha256(DISK).hexdigest()
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture
async def world(api: Api, nats_url: str) -> AsyncIterator[tuple[World, SimulatedFleet]]:
    world = await compute_world(api)
    async with one_host_fleet(api, nats_url, world.host_id) as fleet:
        yield world, fleet


async def for_upload(api: Api, owner: Caller, pool_id: str, **more: Any) -> str:
    body = {"name": "mine", "pool_id": pool_id, "size_bytes": len(DISK), "sha256": DIGEST}
    accepted = await api.settled(await owner.post("/v1/images", json={**body, **more}))
    return str(accepted["resource_id"])


async def image_events(api: Api) -> list[str]:
    schema = api.platform.settings.schema
    rows = await api.platform.store.pool.fetch(
        f"SELECT topic FROM {schema}.scloud_events WHERE topic LIKE 'domain.compute.image:%'"
    )
    return [row["topic"] for row in rows]


async def test_a_tenant_uploads_an_image_and_boots_it(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("uploader")
    image_id = await for_upload(api, owner, await pool_of(api, place), format="raw")
    view = await image(api, owner, image_id)
    assert view["status"] == "uploading" and view["deadline"] is not None
    assert view["source"] == {"upload": DIGEST, "size_bytes": str(len(DISK)), "format": "raw"}

    accepted = await api.settled(
        await owner.put(f"/v1/images/{image_id}/file", data=DISK, headers=OCTETS)
    )
    assert accepted["resource_id"] == image_id
    view = await until_image(api, owner, image_id, "available")
    assert view["visibility"] == "private" and len(view["checksum"]) == 64
    location = f"{POOL}/{image_id}.qcow2"
    assert storage(fleet, place).imports[location] == ImageSource(
        upload=image_id, sha256=DIGEST, format="raw"
    )
    # The bytes wait in the platform's upload store for the host, as they were sent.
    staged = await (await ImageUploads(api.platform.js)._open()).get(image_id)
    assert staged.data == DISK

    again = await owner.put(f"/v1/images/{image_id}/file", data=DISK, headers=OCTETS)
    assert again.status == 409, await again.text()

    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "from-upload",
                "region_id": place.region_id,
                "flavor_id": place.flavor_id,
                "image_id": image_id,
            },
        )
    )
    (instance_id,) = created["instance_ids"]
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    assert storage(fleet, place).disks[instance_id].image_location == location


async def test_an_upload_of_other_bytes_is_refused_and_the_image_still_waits(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("careless")
    image_id = await for_upload(api, owner, await pool_of(api, place))
    path = f"/v1/images/{image_id}/file"
    cases = [
        (DISK, {"Content-Type": "application/json"}, 415, "unsupported_media_type"),
        (DISK + b"x", OCTETS, 413, "request_entity_too_large"),
        (DISK[:-1] + b"x", OCTETS, 422, "image_upload_mismatch"),
        (DISK[:-1], OCTETS, 422, "image_upload_mismatch"),
    ]
    for data, headers, status, code in cases:
        response = await owner.put(path, data=data, headers=headers)
        assert response.status == status, await response.text()
        assert (await response.json())["code"] == code

    async def chunked() -> AsyncIterator[bytes]:
        yield DISK
        yield b"more than declared"

    too_long = await owner.put(path, data=chunked(), headers=OCTETS)
    assert too_long.status == 413
    assert (await image(api, owner, image_id))["status"] == "uploading"
    assert not storage(fleet, place).imports

    neighbour = await api.tenant("neighbour")
    foreign = await neighbour.put(path, data=DISK, headers=OCTETS)
    assert foreign.status == 404

    # Nothing came within the hour: the image ends in error, as an import would.
    assert await expire_image(api.platform.executor, image_id, clock.now() + timedelta(hours=2))
    view = await image(api, owner, image_id)
    assert view["status"] == "error" and "upload did not finish" in view["error"]


@pytest.mark.parametrize(
    "extra",
    [
        {"location": "/etc/shadow"},
        {"location": f"{POOL}/tiny.qcow2"},
        {"kernel": "/boot/vmlinuz"},
    ],
)
async def test_a_tenant_cannot_register_host_files_as_an_image(
    api: Api, world: tuple[World, SimulatedFleet], extra: dict[str, str]
) -> None:
    place, _ = world
    owner = await api.tenant("sneaky")
    before = await image_events(api)
    body = {"name": "shadow", "pool_id": await pool_of(api, place), **extra}
    refused = await owner.post("/v1/images", json=body)
    assert refused.status == 422, await refused.text()
    assert next(iter(extra)) in (await refused.json())["detail"]
    with_size = {**body, "size_bytes": 1, "sha256": "0" * 64}
    assert (await owner.post("/v1/images", json=with_size)).status == 422
    assert await image_events(api) == before
    staff_only = await owner.post("/v1/admin/images", json=body)
    assert staff_only.status == 403


@pytest.mark.parametrize(
    ("field", "path"),
    [
        ("location", "/etc/shadow"),
        ("location", f"{POOL}/../../../etc/shadow"),
        ("location", f"{POOL}"),
        ("location", f"{POOL}-other/tiny.qcow2"),
        ("location", "images/tiny.qcow2"),
        ("kernel", "/var/lib/scloud/token.key"),
        ("initrd", f"{POOL}/./initrd"),
    ],
)
async def test_staff_register_only_files_inside_the_image_pool_s_directory(
    api: Api, world: tuple[World, SimulatedFleet], field: str, path: str
) -> None:
    place, _ = world
    pool_id = await pool_of(api, place)
    body = {"name": "outside", "pool_id": pool_id, "location": f"{POOL}/fine.qcow2", field: path}
    before = await image_events(api)
    refused = await api.admin.post("/v1/admin/images", json=body)
    assert refused.status == 422, await refused.text()
    problem = await refused.json()
    assert problem["code"] == "image_path_outside_pool" and problem.get("field") in (field, None)
    assert await image_events(api) == before
    inside = {**body, field: f"{POOL}/{field}.file"}
    assert (await api.admin.post("/v1/admin/images", json=inside)).status == 202
