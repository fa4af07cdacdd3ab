"""Hosts join by token: an admin issues it (secret shown once, only its hash kept), a host
daemon registers with it over NATS request/reply, and a bad token is refused and audited."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.services import host_registration
from domain.compute import instance as instance_module
from gateways.bus.registration import RegisterReply
from gateways.settings import Settings
from hostd.main import run_hostd
from hostd.register import RECORD, RegistrationRefused, join
from tests.api.compute_world import compute_world
from tests.api.conftest import Api

SUBJECT = f"t{secrets.token_hex(5)}.hosts.register"
"""This module's platforms answer here only: other platforms on the same NATS stay apart."""


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"host_register_subject": SUBJECT}


async def issue(api: Api, cluster_id: str, **body: Any) -> dict[str, Any]:
    response = await api.admin.post(f"/v1/admin/clusters/{cluster_id}/join-tokens", json=body)
    return dict(await api.settled(response))


async def joined(token: str, state_dir: Path, hostname: str) -> str | None:
    return await join(
        "nats://unused",
        token,
        asyncio.Event(),
        state_dir=state_dir,
        hostname=hostname,
        subject=SUBJECT,
        timeout=5,
    )


async def refused(nats_url: str, token: str, state_dir: Path, hostname: str) -> RegisterReply:
    with pytest.raises(RegistrationRefused) as caught:
        await join(
            nats_url,
            token,
            asyncio.Event(),
            state_dir=state_dir,
            hostname=hostname,
            subject=SUBJECT,
            timeout=5,
        )
    return caught.value.reply


async def denied(api: Api, reply: RegisterReply, code: str) -> None:
    """The refusal is an operation with status denied, under the join action."""
    assert reply.code == code, reply
    assert reply.operation_id is not None
    view = await (await api.admin.get(f"/v1/operations/{reply.operation_id}")).json()
    assert view["status"] == "denied", view
    assert view["action"] == host_registration.JOIN_ACTION
    assert view["error"]["code"] == code


async def test_issuing_shows_the_secret_once_and_stores_only_its_hash(api: Api) -> None:
    world = await compute_world(api)
    path = f"/v1/admin/clusters/{world.cluster_id}/join-tokens"
    headers = {"Idempotency-Key": "join-once"}
    body = {"expires_in_seconds": 600, "hostname": "rack7.example"}
    first = await api.settled(await api.admin.post(path, json=body, headers=headers))
    token = first["join_token"]
    assert token.startswith(f"sjt.{first['token_id']}.")
    secret = token.rsplit(".", 1)[1]
    assert len(secret) >= 32

    again = await api.admin.post(path, json=body, headers=headers)
    repeat = await again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert repeat["token_id"] == first["token_id"] and "join_token" not in repeat

    view = await (await api.admin.get(f"/v1/admin/join-tokens/{first['token_id']}")).json()
    assert view["status"] == "active" and view["cluster_id"] == world.cluster_id
    assert view["hostname"] == "rack7.example" and view["host_id"] is None
    assert secret not in str(view) and "secret_hash" not in view
    listed = await (
        await api.admin.get(f"/v1/admin/join-tokens?cluster_id={world.cluster_id}")
    ).json()
    assert [item["id"] for item in listed["items"]] == [first["token_id"]]

    pool, schema = api.platform.store.pool, api.platform.settings.schema
    for table, column in (
        ("scloud_commands", "result"),
        ("scloud_events", "state"),
        ("scloud_events", "metadata"),
        ("resource_documents", "state"),
        ("resource_documents", "view"),
    ):
        found = await pool.fetchval(
            f"SELECT count(*) FROM {schema}.{table} "
            f"WHERE position($1::bytea in {column}::text::bytea) > 0",
            secret.encode(),
        )
        assert found == 0, f"the secret is stored in {table}.{column}"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    stored = await pool.fetchval(
        f"SELECT count(*) FROM {schema}.scloud_events WHERE position($1::bytea in state) > 0",
        digest.encode(),
    )
    assert stored == 1, "the token's SHA-256 is kept, in its one creation event"


async def test_a_hostd_with_a_token_registers_in_the_cluster_and_runs_an_instance(
    api: Api, nats_url: str, tmp_path: Path
) -> None:
    world = await compute_world(api, vcpus=1)
    # The admin-registered host of the world has no daemon: out of the way for placement.
    await api.settled(await api.admin.post(f"/v1/admin/hosts/{world.host_id}/actions/disable"))
    issued = await issue(api, world.cluster_id, expires_in_seconds=600)
    hostname = f"joined-{secrets.token_hex(3)}.example"
    settings = Settings(
        host_driver="simulated",
        state_dir=tmp_path,
        host_register_subject=SUBJECT,
        host_join_token=issued["join_token"],
    )
    stop = asyncio.Event()
    daemon = asyncio.create_task(
        run_hostd(nats_url, "unused", stop, settings, every=0.3, hostname=hostname)
    )
    try:
        host: dict[str, Any] = {}
        async with asyncio.timeout(15):
            while not host:
                await api.wait_for(await api.platform.store.last_position())
                page = await (
                    await api.admin.get(f"/v1/admin/hosts?cluster_id={world.cluster_id}")
                ).json()
                host = next((h for h in page["items"] if h["hostname"] == hostname), {})
                await asyncio.sleep(0.05)
        assert host["region_id"] == world.region_id and host["status"] == "enabled"
        assert host["capacity"]["vcpus"] >= 1 and host["capacity"]["memory_mb"] >= 512
        token = await (await api.admin.get(f"/v1/admin/join-tokens/{issued['token_id']}")).json()
        assert token["status"] == "used" and token["host_id"] == host["id"]

        await api.platform.host_health.start()
        async with asyncio.timeout(15):
            while not api.platform.host_health.health(host["id"])[0]:
                await asyncio.sleep(0.1)
        owner = await api.tenant("joined")
        created = await api.settled(
            await owner.post(
                "/v1/instances",
                json={
                    "name": "on-joined",
                    "flavor_id": world.flavor_id,
                    "image_id": world.image_id,
                    "region_id": world.region_id,
                },
            )
        )
        instance_id = created["instance_ids"][0]
        view: dict[str, Any] = {}
        async with asyncio.timeout(30):
            while view.get("status") != instance_module.RUNNING:
                await asyncio.sleep(0.1)
                await api.wait_for(await api.platform.store.last_position())
                view = await (await owner.get(f"/v1/instances/{instance_id}")).json()
                assert view.get("status") != "error", view
        assert view["host_id"] == host["id"]
    finally:
        stop.set()
        done, _ = await asyncio.wait([daemon], timeout=3)
        if not done:
            daemon.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await daemon
    assert daemon.cancelled() or daemon.exception() is None

    # A restart with the same token in its environment runs as the same host, asking no one.
    assert (tmp_path / "host" / RECORD).exists()
    again = await joined(issued["join_token"], tmp_path / "host", hostname)
    assert again == host["id"]


async def test_reused_expired_revoked_wrong_and_foreign_tokens_are_refused_and_audited(
    api: Api, nats_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = await compute_world(api)
    issued = await issue(api, world.cluster_id, expires_in_seconds=600)
    token = issued["join_token"]
    first = await join(
        nats_url,
        token,
        asyncio.Event(),
        state_dir=tmp_path / "a",
        hostname="a.example",
        subject=SUBJECT,
    )
    assert first is not None and first.startswith("hst-")

    # Used: another machine with the same token is refused.
    await denied(
        api, await refused(nats_url, token, tmp_path / "b", "b.example"), "join_token_used"
    )
    # Wrong: a right token id with another secret, and something that is no token at all.
    wrong = token.rsplit(".", 1)[0] + "." + secrets.token_urlsafe(32)
    await denied(
        api, await refused(nats_url, wrong, tmp_path / "c", "c.example"), "join_token_invalid"
    )
    await denied(
        api,
        await refused(nats_url, "not-a-token", tmp_path / "d", "d.example"),
        "join_token_invalid",
    )
    # Revoked.
    revoked = await issue(api, world.cluster_id, expires_in_seconds=600)
    await api.settled(
        await api.admin.post(f"/v1/admin/join-tokens/{revoked['token_id']}/actions/revoke")
    )
    reply = await refused(nats_url, revoked["join_token"], tmp_path / "e", "e.example")
    await denied(api, reply, "join_token_revoked")
    # For another hostname.
    named = await issue(api, world.cluster_id, expires_in_seconds=600, hostname="f.example")
    reply = await refused(nats_url, named["join_token"], tmp_path / "g", "g.example")
    await denied(api, reply, "join_token_hostname_mismatch")
    # Expired: the platform's clock is two hours on.
    expiring = await issue(api, world.cluster_id, expires_in_seconds=3600)

    class Later:
        @staticmethod
        def now() -> datetime:
            return datetime.now(UTC) + timedelta(hours=2)

    monkeypatch.setattr(host_registration, "clock", Later)
    reply = await refused(nats_url, expiring["join_token"], tmp_path / "h", "h.example")
    await denied(api, reply, "join_token_expired")
    monkeypatch.undo()

    # None of the refused ones made a host; the one that joined is there, once.
    await api.wait_for(await api.platform.store.last_position())
    page = await (await api.admin.get(f"/v1/admin/hosts?cluster_id={world.cluster_id}")).json()
    names = {h["id"]: h["hostname"] for h in page["items"]}
    assert sorted(names.values()) == sorted(["a.example", names[world.host_id]])
    # The audit log shows the admin each attempt, with the host as the actor.
    audit = await (
        await api.admin.get(f"/v1/audit-events?action={host_registration.JOIN_ACTION}&limit=100")
    ).json()
    outcomes = sorted(item["outcome"] for item in audit["items"])
    assert outcomes == ["denied"] * 6 + ["succeeded"], audit
    assert {item["actor_kind"] for item in audit["items"]} == {"host"}


async def test_a_token_for_a_hostname_binds_that_host_again(
    api: Api, nats_url: str, tmp_path: Path
) -> None:
    world = await compute_world(api)
    first = await issue(api, world.cluster_id, hostname="again.example")
    host_id = await join(
        nats_url,
        first["join_token"],
        asyncio.Event(),
        state_dir=tmp_path / "1",
        hostname="again.example",
        subject=SUBJECT,
    )
    # The machine is reinstalled (its state directory is gone): a new token for its name.
    second = await issue(api, world.cluster_id, hostname="again.example")
    again = await join(
        nats_url,
        second["join_token"],
        asyncio.Event(),
        state_dir=tmp_path / "2",
        hostname="again.example",
        subject=SUBJECT,
    )
    assert again == host_id
    # A token for any hostname does not take over a registered one.
    anyone = await issue(api, world.cluster_id)
    reply = await refused(nats_url, anyone["join_token"], tmp_path / "3", "again.example")
    assert reply.code == "name_in_use" and reply.operation_id is not None


async def test_run_hostd_stops_with_the_refusal(nats_url: str, tmp_path: Path, api: Api) -> None:
    settings = Settings(host_driver="simulated", state_dir=tmp_path, host_register_subject=SUBJECT)
    with pytest.raises(RegistrationRefused, match="join_token_invalid"):
        await run_hostd(nats_url, "unused", asyncio.Event(), settings, join_token="sjt.x.y")


def test_the_join_token_comes_from_the_environment() -> None:
    settings = Settings.from_env(
        {"SCLOUD_HOST_JOIN_TOKEN": "sjt.a.b", "SCLOUD_HOST_REGISTER_SUBJECT": "r.hosts"}
    )
    assert settings.host_join_token == "sjt.a.b"
    assert settings.host_register_subject == "r.hosts"
    assert Settings.from_env({}).host_join_token is None


async def test_two_hosts_racing_with_one_token_register_one_host(
    api: Api, nats_url: str, tmp_path: Path
) -> None:
    world = await compute_world(api)
    token = (await issue(api, world.cluster_id))["join_token"]

    async def attempt(name: str) -> str | RegisterReply:
        try:
            joined = await join(
                nats_url,
                token,
                asyncio.Event(),
                state_dir=tmp_path / name,
                hostname=f"{name}.example",
                subject=SUBJECT,
            )
        except RegistrationRefused as refused:
            return refused.reply
        assert joined is not None
        return joined

    results = await asyncio.gather(*(attempt(f"racer{i}") for i in range(4)))
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if isinstance(r, RegisterReply)]
    assert len(winners) == 1 and len(losers) == 3
    for reply in losers:
        await denied(api, reply, "join_token_used")
