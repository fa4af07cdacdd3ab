"""The webhook API: target validation, the admin's private-target switch, the secret's keeping."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api
from tests.webhooks.conftest import (
    NEVER_CONTACTED,
    documented_verifier,
    eventually,
    loopback_webhook,
)
from tests.webhooks.receiver import Receiver

REFUSED = {
    "http://127.0.0.1:8080/hook": "webhook_target_not_public",
    "http://[::1]:8080/hook": "webhook_target_not_public",
    "http://169.254.169.254/latest/meta-data/": "webhook_target_not_public",
    "https://10.0.0.7/hook": "webhook_target_not_public",
    "http://localhost/hook": "webhook_target_not_public",
    "http://[::ffff:127.0.0.1]/hook": "webhook_target_not_public",
    "http://0.0.0.0/": "webhook_target_not_public",
    "ftp://example.com/hook": "webhook_url_invalid",
    "https://user:password@example.com/hook": "webhook_url_invalid",
}


async def test_internal_and_malformed_targets_are_refused_with_clear_codes(api: Api) -> None:
    owner = await api.tenant()
    for url, code in REFUSED.items():
        response = await owner.post("/v1/webhooks", json={"url": url, "paused": True})
        assert response.status == 422, url
        assert response.content_type == "application/problem+json"
        problem = await response.json()
        assert problem["code"] == code, (url, problem)
    bad_types = await owner.post(
        "/v1/webhooks", json={"url": NEVER_CONTACTED, "event_types": ["no spaces"]}
    )
    assert (await bad_types.json())["code"] == "webhook_event_types_invalid"
    staff = await api.admin.post("/v1/webhooks", json={"url": NEVER_CONTACTED, "paused": True})
    assert staff.status == 422


async def test_only_a_platform_admin_allows_private_targets_per_webhook(
    api: Api, receivers: Any
) -> None:
    receiver: Receiver = await receivers()
    owner = await api.tenant()
    webhook_id, _ = await loopback_webhook(api, owner, receiver.url, ["Project.*"])
    await api.settled(await owner.post("/v1/projects", json={"name": "one"}))
    await eventually(lambda: len(receiver.acknowledged) == 1)

    by_tenant = await owner.post(
        f"/v1/admin/webhooks/{webhook_id}/actions/allow-private", json={"allowed": True}
    )
    assert by_tenant.status == 403
    other_hook = await api.settled(
        await owner.post("/v1/webhooks", json={"url": NEVER_CONTACTED, "paused": True})
    )
    refused = await owner.patch(
        f"/v1/webhooks/{other_hook['resource_id']}", json={"url": receiver.url}
    )
    assert (await refused.json())["code"] == "webhook_target_not_public"  # allowed per webhook

    await api.settled(
        await api.admin.post(
            f"/v1/admin/webhooks/{webhook_id}/actions/allow-private", json={"allowed": False}
        )
    )
    view = await (await owner.get(f"/v1/webhooks/{webhook_id}")).json()
    assert view["allow_private"] is False
    await api.settled(await owner.post("/v1/projects", json={"name": "two"}))

    async def refused_at_send() -> bool:
        log = await (await owner.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()
        return any("loopback" in (d["last_error"] or "") for d in log["items"])

    await eventually(refused_at_send)
    assert len(receiver.requests) == 1  # the address was refused before connecting


async def test_the_secret_is_shown_once_and_stored_nowhere(api: Api, receivers: Any) -> None:
    receiver: Receiver = await receivers()
    owner = await api.tenant()
    headers = {"Idempotency-Key": "create-hook-1"}
    body = {"url": NEVER_CONTACTED, "paused": True}
    created = await api.settled(await owner.post("/v1/webhooks", json=body, headers=headers))
    secret, webhook_id = created["secret"], created["resource_id"]
    repeat = await (await owner.post("/v1/webhooks", json=body, headers=headers)).json()
    assert repeat["resource_id"] == webhook_id and repeat["secret"] == secret

    view = await (await owner.get(f"/v1/webhooks/{webhook_id}")).json()
    assert secret not in str(view)
    schema = api.platform.settings.schema
    pool = api.platform.store.pool
    for table in ("scloud_events", "scloud_commands", "resource_documents", "webhook_registry"):
        for row in await pool.fetch(f"SELECT * FROM {schema}.{table}"):
            values = [v if isinstance(v, bytes) else str(v).encode() for v in row.values()]
            assert secret.encode() not in b"\0".join(values), table

    rotated = await api.settled(
        await owner.post(f"/v1/webhooks/{webhook_id}/actions/rotate-secret")
    )
    assert rotated["secret"] != secret
    await api.settled(
        await api.admin.post(
            f"/v1/admin/webhooks/{webhook_id}/actions/allow-private", json={"allowed": True}
        )
    )
    await api.settled(await owner.patch(f"/v1/webhooks/{webhook_id}", json={"url": receiver.url}))
    await api.settled(await owner.post(f"/v1/webhooks/{webhook_id}/actions/resume"))
    await eventually(lambda: len(receiver.acknowledged) >= 1)
    verify_signature = documented_verifier()
    signed = receiver.acknowledged[0]
    assert verify_signature(rotated["secret"], signed.headers["Scloud-Signature"], signed.body)
    assert not verify_signature(secret, signed.headers["Scloud-Signature"], signed.body)


async def test_read_only_users_see_webhooks_but_cannot_change_them(api: Api) -> None:
    owner = await api.tenant()
    reader = await api.sub_account(owner, ["read-only"])
    created = await api.settled(
        await owner.post("/v1/webhooks", json={"url": NEVER_CONTACTED, "paused": True})
    )
    listed = await (await reader.get("/v1/webhooks")).json()
    assert [w["id"] for w in listed["items"]] == [created["resource_id"]]
    assert (await reader.post("/v1/webhooks", json={"url": NEVER_CONTACTED})).status == 403
    path = f"/v1/webhooks/{created['resource_id']}/actions/resume"
    assert (await reader.post(path)).status == 403
    stranger = await api.tenant()
    assert (await stranger.post(path)).status == 404
    assert (await stranger.get(f"/v1/webhooks/{created['resource_id']}")).status == 404
