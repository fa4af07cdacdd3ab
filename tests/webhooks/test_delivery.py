"""Deliveries to a local receiver: signed, every event once and in order, only one's own.

Acceptance for webhooks: the receiver goes down for a while (errors, hangs, a closed port)
and comes back; it then holds every event of its tenant exactly once (deduplicated by
``Scloud-Event-Id``), in position order, and nothing of another tenant.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any

import pytest

from gateways.eventstore.records import RecordedEvent
from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import audit_rows
from tests.webhooks.conftest import documented_verifier, eventually, loopback_webhook
from tests.webhooks.receiver import Receiver


async def _created_at(api: Api, webhook_id: str) -> int:
    """Position of the webhook's creation: it receives what comes after."""
    return (await api.platform.store.read_stream(webhook_id))[0].position


async def _tenant_events(api: Api, caller: Caller, after: int) -> list[RecordedEvent]:
    return await api.platform.store.read_all(after=after, limit=100_000, tenant_id=caller.tenant_id)


class Activity:
    """Commands of one tenant: new projects, and one role changed again and again."""

    def __init__(self, api: Api, caller: Caller) -> None:
        self.api, self.caller, self.role_id = api, caller, ""
        self.round = 0

    async def run(self, rounds: int) -> None:
        if not self.role_id:
            role = await self.caller.post(
                "/v1/roles", json={"name": f"r-{secrets.token_hex(3)}", "actions": ["a:b:read"]}
            )
            self.role_id = (await self.api.settled(role))["resource_id"]
        for _ in range(rounds):
            self.round += 1
            project = await self.caller.post(
                "/v1/projects", json={"name": f"p-{self.round}-{secrets.token_hex(3)}"}
            )
            assert project.status == 202, await project.text()
            actions = [f"compute:thing{self.round}:read"]
            changed = await self.caller.put(
                f"/v1/roles/{self.role_id}/actions", json={"actions": actions}
            )
            assert changed.status == 202, await changed.text()


async def test_a_receiver_down_for_a_while_gets_every_event_once_in_order(
    api: Api, receivers: Any
) -> None:
    verify_signature = documented_verifier()
    receiver: Receiver = await receivers()
    bystander: Receiver = await receivers()
    owner, other = await api.tenant("hooked"), await api.tenant("bystander")
    webhook_id, secret = await loopback_webhook(api, owner, receiver.url)
    other_webhook_id, other_secret = await loopback_webhook(api, other, bystander.url)
    mine, theirs = Activity(api, owner), Activity(api, other)

    await asyncio.gather(mine.run(3), theirs.run(3))
    receiver.answer = 503  # down: errors
    await asyncio.gather(mine.run(3), theirs.run(3))
    await asyncio.sleep(0.4)
    receiver.answer, receiver.hang = 204, 1.0  # down: hangs past the sender's timeout
    await mine.run(2)
    await asyncio.sleep(1.2)
    receiver.hang = 0.0
    await receiver.down()  # down: connection refused
    await asyncio.gather(mine.run(3), theirs.run(2))
    await asyncio.sleep(0.4)
    await receiver.up()
    await asyncio.gather(mine.run(3), theirs.run(3))

    start = await _created_at(api, webhook_id)
    expected = await _tenant_events(api, owner, start)
    expected_ids = [e.envelope().event_id for e in expected]
    await eventually(lambda: set(receiver.first_acknowledged()) >= set(expected_ids), 30)
    await asyncio.sleep(0.3)  # anything extra would arrive now

    failed = [r for r in receiver.requests if r.status not in range(200, 300)]
    assert len(failed) >= 4, "the receiver was down and saw retries"
    assert {r.status for r in failed} >= {503, 0}
    for received in receiver.requests:
        header = received.headers["Scloud-Signature"]
        assert verify_signature(secret, header, received.body)
        assert not verify_signature(other_secret, header, received.body)
        assert received.event["tenant_id"] == owner.tenant_id

    acknowledged = receiver.acknowledged
    assert [r.headers["Scloud-Event-Id"] for r in acknowledged] == expected_ids  # once, in order
    positions = [r.event["position"] for r in acknowledged]
    assert positions == sorted(positions) == [e.position for e in expected]
    versions: dict[str, list[int]] = {}
    for received in acknowledged:
        versions.setdefault(received.event["resource_id"], []).append(received.event["version"])
    assert all(v == sorted(v) for v in versions.values())
    assert len(versions[mine.role_id]) >= 14  # the role changed every round, in order

    their_ids = {e.envelope().event_id for e in await _tenant_events(api, other, 0)}
    assert not their_ids & set(receiver.first_acknowledged())
    await eventually(
        lambda: (
            all(r.event["tenant_id"] == other.tenant_id for r in bystander.requests)
            and len(bystander.first_acknowledged()) >= 20
        )
    )

    log = await (await owner.get(f"/v1/webhooks/{webhook_id}/deliveries?limit=500")).json()
    assert {d["status"] for d in log["items"]} == {"succeeded"}
    assert len(log["items"]) == len(expected_ids)
    retried = [d for d in log["items"] if d["attempts"] > 1]
    assert retried
    one = await (await owner.get(f"/v1/webhooks/{webhook_id}/deliveries/{retried[0]['id']}")).json()
    attempts = one["attempt_log"]
    assert len(attempts) == one["attempts"] and attempts[-1]["status_code"] == 204
    assert all(a["error"] for a in attempts[:-1]) and all(a["latency_ms"] >= 0 for a in attempts)
    other_log = await owner.get(f"/v1/webhooks/{other_webhook_id}/deliveries")
    assert other_log.status == 404


@pytest.mark.webhook_policy(max_failures=3)
async def test_dead_letter_after_consecutive_failures_and_resume(api: Api, receivers: Any) -> None:
    receiver: Receiver = await receivers()
    receiver.answer = 500
    owner = await api.tenant()
    webhook_id, _ = await loopback_webhook(api, owner, receiver.url)

    async def status() -> str:
        view = await (await owner.get(f"/v1/webhooks/{webhook_id}")).json()
        return str(view["status"])

    await eventually(lambda: _is(status(), "dead_lettered"))
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 3  # nothing after the third failure
    view = await (await owner.get(f"/v1/webhooks/{webhook_id}")).json()
    assert "3 failed attempts" in view["dead_letter_reason"]
    assert "HTTP 500" in view["dead_letter_reason"]
    log = await (await owner.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()
    assert [(d["status"], d["attempts"]) for d in log["items"]] == [("failed", 3)]
    stuck = log["items"][0]

    receiver.answer = 204
    await api.settled(await owner.post(f"/v1/webhooks/{webhook_id}/actions/resume"))

    def types() -> list[str]:
        return [r.headers["Scloud-Event-Type"] for r in receiver.acknowledged]

    # Everything since, the webhook's own dead-lettering and resumption included.
    await eventually(lambda: {"Webhook.DeadLettered", "Webhook.Resumed"} <= set(types()))
    first = receiver.acknowledged[0]
    assert first.headers["Scloud-Event-Id"] == stuck["event_id"]  # retried, not skipped
    assert first.headers["Scloud-Delivery-Id"] == stuck["id"]
    assert len(receiver.first_acknowledged()) == len(receiver.acknowledged)
    assert await status() == "active"


async def _is(value: Any, wanted: str) -> bool:
    return bool(await value == wanted)


async def _logged(items: Any, count: int) -> bool:
    return len(await items) >= count


async def test_redelivery_replay_pause_and_filters(api: Api, receivers: Any) -> None:
    receiver: Receiver = await receivers()
    owner = await api.tenant()
    webhook_id, _ = await loopback_webhook(api, owner, receiver.url, ["Project.*"])
    start = await _created_at(api, webhook_id)
    for i in range(3):
        await api.settled(await owner.post("/v1/projects", json={"name": f"p{i}"}))
    await eventually(lambda: len(receiver.acknowledged) == 3)
    assert {r.headers["Scloud-Event-Type"] for r in receiver.acknowledged} == {"Project.Created"}

    log = (await (await owner.get(f"/v1/webhooks/{webhook_id}/deliveries")).json())["items"]
    oldest = log[-1]
    await api.settled(
        await owner.post(f"/v1/webhooks/{webhook_id}/deliveries/{oldest['id']}/actions/redeliver")
    )
    await eventually(lambda: len(receiver.acknowledged) == 4)
    again = receiver.acknowledged[3]
    assert again.headers["Scloud-Event-Id"] == oldest["event_id"]
    assert again.headers["Scloud-Delivery-Id"] != oldest["id"]

    async def deliveries() -> list[Any]:
        page = await (await owner.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()
        return list(page["items"])

    # The receiver holds the request before the dispatcher has the answer it logs.
    await eventually(lambda: _logged(deliveries(), 4))
    log = await deliveries()
    assert log[0]["redelivery_of"] == oldest["id"] and len(log) == 4, log

    await api.settled(
        await owner.post(f"/v1/webhooks/{webhook_id}/actions/replay", json={"after": start})
    )
    await eventually(lambda: len(receiver.acknowledged) == 7)
    first_three = [r.headers["Scloud-Event-Id"] for r in receiver.acknowledged[:3]]
    assert [r.headers["Scloud-Event-Id"] for r in receiver.acknowledged[4:]] == first_three

    await api.settled(await owner.post(f"/v1/webhooks/{webhook_id}/actions/pause"))
    await api.settled(await owner.post("/v1/projects", json={"name": "while-paused"}))
    await asyncio.sleep(0.5)
    assert len(receiver.acknowledged) == 7
    await api.settled(
        await owner.patch(f"/v1/webhooks/{webhook_id}", json={"event_types": ["Role.*"]})
    )
    await api.settled(await owner.post(f"/v1/webhooks/{webhook_id}/actions/resume"))
    await api.settled(await owner.post("/v1/roles", json={"name": "r", "actions": ["a:b:c"]}))
    await eventually(lambda: len(receiver.acknowledged) == 8)
    assert receiver.acknowledged[7].headers["Scloud-Event-Type"] == "Role.Created"


async def test_no_secret_reaches_a_webhook(api: Api, receivers: Any) -> None:
    """A sub-account's argon2 hash and the webhook's own salt are redacted from the body."""
    verify_signature = documented_verifier()
    receiver: Receiver = await receivers()
    owner = await api.tenant("redacted")
    webhook_id, first_secret = await loopback_webhook(
        api, owner, receiver.url, ["User.*", "Webhook.*"]
    )
    user = await api.sub_account(owner, ["read-only"])
    rotated = await api.settled(
        await owner.post(f"/v1/webhooks/{webhook_id}/actions/rotate-secret")
    )
    secret = rotated["secret"]
    hashed = json.loads((await api.platform.store.read_stream(user.user_id))[0].state)
    rotation = json.loads((await api.platform.store.read_stream(webhook_id))[-1].state)
    assert hashed["password_hash"].startswith("$argon2") and rotation["secret_salt"]

    await eventually(
        lambda: (
            {"User.Created", "Webhook.SecretRotated"}
            <= {r.headers["Scloud-Event-Type"] for r in receiver.acknowledged}
        )
    )
    for received in receiver.requests:
        assert hashed["password_hash"].encode() not in received.body
        assert rotation["secret_salt"].encode() not in received.body
    by_type = {r.headers["Scloud-Event-Type"]: r for r in receiver.acknowledged}
    created = by_type["User.Created"].event
    assert created["resource_id"] == user.user_id
    assert created["data"]["password_hash"] == "[redacted]"
    assert created["redacted"] == ["password_hash"]
    rotated_event = by_type["Webhook.SecretRotated"]
    assert rotated_event.event["redacted"] == ["key_id", "secret_salt"]
    # The body is signed as sent, redacted: the receiver's check still holds. The event that
    # announces a rotation may go out under the secret it replaces or the new one.
    signed = rotated_event.headers["Scloud-Signature"]
    assert any(verify_signature(key, signed, rotated_event.body) for key in (secret, first_secret))


@pytest.fixture
def platform_overrides(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings of this module's platform; a test may give its own (indirect parameter)."""
    return dict(getattr(request, "param", {}))


@pytest.mark.webhook_policy(max_failures=None)
@pytest.mark.parametrize(
    "platform_overrides", [{"webhook_pause_after_hours": 0.6 / 3600}], indirect=True
)
async def test_a_target_that_keeps_failing_is_paused_and_resumes_where_it_stopped(
    api: Api, receivers: Any
) -> None:
    """Failures, backlog and next attempt on the webhook; paused after the failing time."""
    receiver: Receiver = await receivers()
    receiver.answer = 503
    owner = await api.tenant("failing")
    webhook_id, _ = await loopback_webhook(api, owner, receiver.url)
    for n in range(3):
        await api.settled(await owner.post("/v1/projects", json={"name": f"waiting-{n}"}))

    async def view() -> dict[str, Any]:
        found: dict[str, Any] = await (await owner.get(f"/v1/webhooks/{webhook_id}")).json()
        return found

    await eventually(lambda: _is(_status(view()), "paused"))
    paused = await view()
    delivery = paused["delivery"]
    assert delivery["failures"] >= 2 and delivery["failing_since"] is not None
    assert delivery["next_attempt_at"] and delivery["backlog"] >= 4  # resume + 3 projects
    assert "HTTP 503" in paused["pause_reason"] and "failing since" in paused["pause_reason"]
    stream = await api.platform.store.read_stream(webhook_id)
    assert stream[-1].topic.endswith(":Webhook.PausedForFailures")
    assert stream[-1].tenant_id == owner.tenant_id  # on the owner's own stream
    await api.wait_for(stream[-1].position)
    audited = await audit_rows(owner, action="monitor:webhook:pause")
    assert [(r["resource_id"], r["outcome"]) for r in audited] == [(webhook_id, "succeeded")]
    attempts = len(receiver.requests)
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == attempts  # nothing is sent while paused

    log = await (await owner.get(f"/v1/webhooks/{webhook_id}/deliveries")).json()
    stuck = log["items"][0]
    receiver.answer = 204
    await api.settled(await owner.post(f"/v1/webhooks/{webhook_id}/actions/resume"))
    delivered = await _tenant_events(api, owner, stuck["position"] - 1)
    await eventually(lambda: len(receiver.first_acknowledged()) >= len(delivered))
    first = receiver.acknowledged[0]
    assert first.headers["Scloud-Event-Id"] == stuck["event_id"]  # where it stopped
    positions = [r.event["position"] for r in receiver.acknowledged]
    assert positions == [e.position for e in delivered]  # then the rest, in order, once
    assert "Webhook.PausedForFailures" in {
        r.headers["Scloud-Event-Type"] for r in receiver.acknowledged
    }
    resumed = await view()
    assert resumed["status"] == "active" and resumed["pause_reason"] is None
    assert resumed["delivery"]["failures"] == 0 and resumed["delivery"]["failing_since"] is None
    assert resumed["delivery"]["backlog"] == 0


async def _status(view: Any) -> str:
    return str((await view)["status"])
