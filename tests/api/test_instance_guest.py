"""A tenant's actions on its guest's system: reinstall the root disk, reset a password, and
open the VNC console, through the API, NATS and a simulated host daemon."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from api.services import console
from gateways.guest_passwords import sha512_crypt
from hostd.drivers.compute.port import PowerState
from hostd.fleet import SimulatedFleet
from hostd.storage.simulated import SimulatedStorage
from tests.api.compute_world import World, compute_world, create, one_host_fleet
from tests.api.conftest import Api, Caller
from tests.api.test_host_failure import until

PASSWORD = "correct horse battery staple"


@pytest.fixture
async def world(api: Api, nats_url: str) -> AsyncIterator[tuple[World, SimulatedFleet]]:
    world = await compute_world(api)
    async with one_host_fleet(api, nats_url, world.host_id) as fleet:
        yield world, fleet


async def running(api: Api, place: World, owner: Caller) -> str:
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "guest",
                "region_id": place.region_id,
                "flavor_id": place.flavor_id,
                "image_id": place.image_id,
            },
        )
    )
    instance_id: str = created["instance_ids"][0]
    await until(api, owner, [instance_id], lambda v: v["status"] == "running", 30)
    return instance_id


async def image(api: Api, place: World, name: str, **extra: Any) -> str:
    pool = await (await api.admin.get(f"/v1/admin/image-pools?region_id={place.region_id}")).json()
    pool_id = next(p["id"] for p in pool["items"] if p["region_id"] == place.region_id)
    body = {"name": name, "pool_id": pool_id, "location": f"/var/lib/scloud/images/{name}.qcow2"}
    return await create(api, "/v1/admin/images", {**body, **extra})


def storage(fleet: SimulatedFleet, host_id: str) -> SimulatedStorage:
    disks = fleet.daemons[host_id].host.storage
    assert isinstance(disks, SimulatedStorage)
    return disks


def names(stream: list[Any]) -> list[str]:
    return [e.topic.rpartition(".")[2] for e in stream if not e.topic.endswith("ConsoleReported")]


async def test_reinstall_rebuilds_the_disk_from_another_image_and_keeps_the_power_state(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("reinstallers")
    instance_id = await running(api, place, owner)
    disks = storage(fleet, place.host_id)
    assert disks.disks[instance_id].image_location.endswith("tiny.qcow2")
    other = await image(api, place, "other")

    await api.settled(
        await owner.post(f"/v1/instances/{instance_id}/actions/reinstall", json={"image_id": other})
    )
    (view,) = await until(
        api,
        owner,
        [instance_id],
        lambda v: v["status"] == "running" and v["image_id"] == other,
        15,
    )
    assert disks.disks[instance_id].image_location.endswith("other.qcow2")
    assert disks.disks[instance_id].size_gb == view["disk_gb"]
    assert fleet.computes[place.host_id].states[instance_id] == PowerState.RUNNING
    stream = await api.platform.store.read_stream(instance_id)
    assert names(stream)[-2:] == ["ReinstallStarted", "Reinstalled"]
    reinstall = next(e for e in stream if e.topic.endswith("ReinstallStarted"))
    fields = msgspec.json.decode(reinstall.state)
    assert (fields["image_id"], fields["previous_image_id"]) == (other, place.image_id)

    # Stopped, it is rebuilt (from its own image, the default) and stays stopped.
    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 15)
    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/reinstall", json={}))
    async with asyncio.timeout(15):
        while names(await api.platform.store.read_stream(instance_id))[-1] != "Reinstalled":
            await asyncio.sleep(0.1)
    (view,) = await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 5)
    assert view["image_id"] == other
    assert fleet.computes[place.host_id].states[instance_id] == PowerState.STOPPED
    assert disks.disks[instance_id].image_location.endswith("other.qcow2")


async def test_reinstall_refuses_images_that_do_not_fit(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, _ = world
    owner = await api.tenant("picky-reinstallers")
    instance_id = await running(api, place, owner)
    arm = await image(api, place, "arm", architecture="aarch64")
    big = await image(api, place, "big", min_disk_gb=500)
    for image_id, words in ((arm, "aarch64"), (big, "500 GB")):
        refused = await owner.post(
            f"/v1/instances/{instance_id}/actions/reinstall", json={"image_id": image_id}
        )
        problem = await refused.json()
        assert refused.status == 422 and problem["code"] == "validation_failed", problem
        assert words in problem["detail"]
    stale = await owner.post(
        f"/v1/instances/{instance_id}/actions/reinstall", json={}, headers={"If-Match": '"1"'}
    )
    assert stale.status == 412 and (await stale.json())["code"] == "precondition_failed"
    (view,) = await until(api, owner, [instance_id], lambda v: True, 5)
    assert view["status"] == "running" and view["image_id"] == place.image_id


async def test_a_reset_password_reaches_the_guest_as_a_hash_and_is_stored_nowhere_plain(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("password-resetters")
    instance_id = await running(api, place, owner)
    answer = await api.settled(
        await owner.post(
            f"/v1/instances/{instance_id}/actions/reset-password",
            json={"password": PASSWORD, "user": "debian"},
            headers={"Idempotency-Key": "reset-1"},
        )
    )
    compute = fleet.computes[place.host_id]
    async with asyncio.timeout(15):
        while "debian" not in compute.passwords.get(instance_id, {}):
            await asyncio.sleep(0.05)
    hashed = compute.passwords[instance_id]["debian"]
    salt = hashed.split("$")[2]
    assert hashed.startswith("$6$") and await sha512_crypt(PASSWORD, salt=salt) == hashed
    (view,) = await until(api, owner, [instance_id], lambda v: v["status"] == "running", 10)
    assert view["error"] is None
    stream = await api.platform.store.read_stream(instance_id)
    assert names(stream)[-2:] == ["PasswordResetStarted", "PasswordReset"]

    # The same request again is answered from the first (the fingerprint is keyed, not plain).
    again = await owner.post(
        f"/v1/instances/{instance_id}/actions/reset-password",
        json={"password": PASSWORD, "user": "debian"},
        headers={"Idempotency-Key": "reset-1"},
    )
    assert again.status == 202 and (await again.json())["operation_id"] == answer["operation_id"]

    # Not in any event, command record or projection of this platform's schema.
    schema = api.platform.settings.schema
    async with api.platform.store.pool.acquire() as conn:
        tables = await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema
        )
        for (table,) in tables:
            rows = await conn.fetch(f'SELECT t::text FROM "{schema}"."{table}" t')
            assert not [r for r in rows if PASSWORD in r[0]], table
            assert not [r for r in rows if PASSWORD.encode().hex() in r[0]], table

    stopped = await owner.post(
        f"/v1/instances/{instance_id}/actions/reset-password", json={"password": "x"}
    )
    assert stopped.status == 422  # too short for the declared type
    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 15)
    refused = await owner.post(
        f"/v1/instances/{instance_id}/actions/reset-password", json={"password": PASSWORD}
    )
    assert refused.status == 409 and (await refused.json())["code"] == "invalid_state"


async def test_a_failed_password_reset_leaves_the_guest_running_with_the_cause(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, fleet = world
    owner = await api.tenant("unlucky-resetters")
    instance_id = await running(api, place, owner)
    compute = fleet.computes[place.host_id]
    compute.states[instance_id] = PowerState.PAUSED  # the guest agent cannot answer now
    await api.settled(
        await owner.post(
            f"/v1/instances/{instance_id}/actions/reset-password", json={"password": PASSWORD}
        )
    )
    (view,) = await until(api, owner, [instance_id], lambda v: v["status"] == "running", 10)
    assert "not running" in view["error"]
    stream = await api.platform.store.read_stream(instance_id)
    assert names(stream)[-1] == "PasswordResetFailed"
    assert instance_id not in compute.passwords


async def test_the_console_of_a_running_instance_only(
    api: Api, world: tuple[World, SimulatedFleet]
) -> None:
    place, _ = world
    owner = await api.tenant("console-users")
    instance_id = await running(api, place, owner)
    async with asyncio.timeout(10):
        while (answer := await owner.get(f"/v1/instances/{instance_id}/console")).status != 200:
            await asyncio.sleep(0.05)
    body = await answer.json()
    assert answer.headers["Cache-Control"] == "no-store"
    assert body["host_id"] == place.host_id and body["protocol"] == "vnc"
    assert body["port"] >= 5900 and body["hostname"].startswith("node-")
    ticket = console.verify(api.platform.tokens, body["token"])
    assert ticket is not None and ticket.instance_id == instance_id
    assert ticket.port == body["port"] and ticket.host_id == place.host_id
    assert api.platform.tokens.verify(body["token"]) is None  # never a bearer token
    assert console.verify(api.platform.tokens, body["token"][:-2] + "xx") is None

    await api.settled(await owner.post(f"/v1/instances/{instance_id}/actions/stop"))
    await until(api, owner, [instance_id], lambda v: v["status"] == "stopped", 15)
    closed = await owner.get(f"/v1/instances/{instance_id}/console")
    problem = await closed.json()
    assert closed.status == 409 and problem["code"] == "console_unavailable"
    assert closed.content_type == "application/problem+json"
    stranger = await api.tenant("console-strangers")
    assert (await stranger.get(f"/v1/instances/{instance_id}/console")).status == 404
