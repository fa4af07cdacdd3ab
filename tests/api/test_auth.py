"""Signing in and staying signed in: passwords, tokens, API keys, and when they stop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    audit_rows,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    settle,
    tenant_of,
)


def as_key(owner: Caller, created: dict[str, Any]) -> Caller:
    return Caller(owner.client, created["api_key"], owner.user_id, owner.tenant_id)


async def unauthenticated(response: Any) -> str:
    """The problem's detail, after checking it is a 401 problem+json."""
    assert response.status == 401, await response.text()
    assert response.content_type == "application/problem+json"
    problem = await response.json()
    assert problem["code"] == "unauthenticated"
    return str(problem["detail"])


async def test_a_wrong_password_is_refused_and_audited(api: Api) -> None:
    owner = await api.tenant()
    await settle(api)
    email = (await (await owner.get(f"/v1/users/{owner.user_id}")).json())["email"]
    answers = []
    for who, password, request_id in (
        (email, "not-the-password", "login-wrong-password"),
        ("nobody@nowhere.example", "not-the-password", "login-unknown-user"),
    ):
        response = await api.client.post(
            "/v1/auth/login",
            json={"email": who, "password": password},
            headers={"X-Request-Id": request_id},
        )
        answers.append(await unauthenticated(response))
    assert answers[0] == answers[1], "the answer tells which addresses have accounts"
    await settle(api)
    denied = {r["request_id"]: r for r in await audit_rows(api.admin, outcome="denied")}
    for request_id in ("login-wrong-password", "login-unknown-user"):
        assert denied[request_id]["error_code"] == "unauthenticated"
        assert denied[request_id]["actor_id"] == "anonymous"
    # The right password still works, and the sign-in is in the tenant's log.
    signed_in = await api.client.post(
        "/v1/auth/login",
        json={"email": email.upper(), "password": "owner-password-123"},
        headers={"X-Request-Id": "login-right"},
    )
    assert signed_in.status == 200
    await settle(api)
    sessions = await audit_rows(owner, action="iam:session:create")
    assert "login-right" in [r["request_id"] for r in sessions]


async def test_a_revoked_key_stops_at_once(api: Api) -> None:
    owner = await api.tenant()
    created = await (await owner.post("/v1/api-keys", json={"name": "ci"})).json()
    key = as_key(owner, created)
    me = await key.get("/v1/me")
    assert me.status == 200 and (await me.json())["api_key_id"] == created["key_id"]
    revoked = await owner.post(f"/v1/api-keys/{created['key_id']}/actions/revoke")
    assert revoked.status == 202
    # No waiting for any read model: the very next request is refused.
    assert "revoked" in await unauthenticated(await key.get("/v1/me"))
    assert "revoked" in await unauthenticated(await key.post("/v1/projects", json={"name": "x"}))
    await api.settled(revoked)
    listed = await (await owner.get(f"/v1/api-keys/{created['key_id']}")).json()
    assert listed["status"] == "revoked"
    wrong_secret = Caller(owner.client, created["api_key"][:-2] + "xx", "", None)
    await unauthenticated(await wrong_secret.get("/v1/me"))


async def test_a_disabled_users_token_and_keys_stop(api: Api) -> None:
    owner = await api.tenant()
    colleague = await api.sub_account(owner, ["admin"])
    created = await (await colleague.post("/v1/api-keys", json={"name": "theirs"})).json()
    key = as_key(colleague, created)
    assert (await colleague.get("/v1/me")).status == 200
    assert (await key.get("/v1/me")).status == 200
    await settle(api)
    email = (await (await owner.get(f"/v1/users/{colleague.user_id}")).json())["email"]

    disabled = await owner.post(f"/v1/users/{colleague.user_id}/actions/disable")
    assert disabled.status == 202
    await unauthenticated(await colleague.get("/v1/me"))
    await unauthenticated(await key.get("/v1/me"))
    login = await api.client.post(
        "/v1/auth/login", json={"email": email, "password": "user-password-1234"}
    )
    await unauthenticated(login)
    # The owner cannot be disabled: a tenant always keeps someone who can sign in.
    refused = await owner.post(f"/v1/users/{owner.user_id}/actions/disable")
    assert refused.status == 409


async def test_tokens_end_with_their_time_and_with_a_new_password(api: Api) -> None:
    owner = await api.tenant()
    user = api.platform.identity.user(owner.user_id)
    assert user is not None
    expired, _ = api.platform.tokens.issue(owner.user_id, user.token_generation, -1)
    assert "expired" in await unauthenticated(
        await Caller(owner.client, expired, owner.user_id, owner.tenant_id).get("/v1/me")
    )
    forged = owner.token[:-4] + ("AAAA" if not owner.token.endswith("AAAA") else "BBBB")
    await unauthenticated(await Caller(owner.client, forged, "", None).get("/v1/me"))
    for header in ("", "Basic b3duZXI6cHc=", "Bearer", "Bearer sk.nothing", "Bearer st1.a.b"):
        response = await api.client.get("/v1/me", headers={"Authorization": header})
        await unauthenticated(response)

    changed = await owner.post(
        "/v1/me/actions/change-password",
        json={"current_password": "owner-password-123", "new_password": "a-new-password-456"},
    )
    assert changed.status == 202
    assert "revoked" in await unauthenticated(await owner.get("/v1/me"))
    await settle(api)
    email = (await (await api.admin.get(f"/v1/users/{owner.user_id}")).json())["email"]
    again = await api.login(email, "a-new-password-456")
    assert (await again.get("/v1/me")).status == 200


async def test_an_expired_key_stops(api: Api) -> None:
    owner = await api.tenant()
    soon = datetime.now(UTC) + timedelta(seconds=1)
    short = await (
        await owner.post("/v1/api-keys", json={"name": "short", "expires_at": soon.isoformat()})
    ).json()
    past = datetime.now(UTC) - timedelta(days=1)
    stale = await (
        await owner.post("/v1/api-keys", json={"name": "stale", "expires_at": past.isoformat()})
    ).json()
    naive = await owner.post(
        "/v1/api-keys", json={"name": "naive", "expires_at": "2030-01-01T00:00:00"}
    )
    assert naive.status == 422

    key = as_key(owner, short)
    assert (await key.get("/v1/me")).status == 200
    assert "expired" in await unauthenticated(await as_key(owner, stale).get("/v1/me"))
    await asyncio.sleep(max(0.0, (soon - datetime.now(UTC)).total_seconds()) + 0.1)
    assert "expired" in await unauthenticated(await key.get("/v1/me"))


async def test_a_narrow_key_may_do_only_what_it_names(api: Api) -> None:
    owner = await api.tenant()
    created = await (
        await owner.post("/v1/api-keys", json={"name": "reader", "actions": ["iam:project:read"]})
    ).json()
    key = as_key(owner, created)
    assert (await key.get("/v1/projects")).status == 200
    for method, path, body in (
        ("POST", "/v1/projects", {"name": "nope"}),
        ("GET", "/v1/users", None),
        ("POST", "/v1/api-keys", {"name": "wider"}),
        ("GET", "/v1/audit-events", None),
    ):
        response = await key.client.request(
            method, path, json=body, headers=key.headers({"X-Request-Id": f"narrow {path}"})
        )
        assert response.status == 403, (method, path)
        problem = await response.json()
        assert problem["code"] == "forbidden" and "API key does not grant" in problem["detail"]
    await settle(api)
    denied = {r["request_id"]: r for r in await audit_rows(owner, outcome="denied")}
    entry = denied["narrow /v1/projects"]
    assert entry["via_key"] == created["key_id"] and entry["actor_id"] == owner.user_id
    assert tenant_of(owner) == entry["tenant_id"]


async def test_a_key_never_does_more_than_its_user(api: Api) -> None:
    owner = await api.tenant()
    role = await api.settled(
        await owner.post(
            "/v1/roles",
            json={"name": "keys", "actions": ["iam:apikey:create", "iam:project:read"]},
        )
    )
    user = await api.sub_account(owner, [], custom_roles=[role["resource_id"]])
    created = await user.post(
        "/v1/api-keys", json={"name": "wide", "actions": ["iam:project:create", "*"]}
    )
    assert created.status == 202, await created.text()
    key = as_key(user, await created.json())
    assert (await key.get("/v1/projects")).status == 200
    refused = await key.post("/v1/projects", json={"name": "escalated"})
    assert refused.status == 403
    assert "no role grants iam:project:create" in (await refused.json())["detail"]
