"""A narrow API key cannot become its user: passwords, self-service actions, wider keys."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    audit_rows,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    settle,
    tenant_of,
)

OWNER_PASSWORD = "owner-password-123"


def as_key(owner: Caller, created: dict[str, Any]) -> Caller:
    return Caller(owner.client, created["api_key"], owner.user_id, owner.tenant_id)


async def key(owner: Caller, actions: list[str] | None) -> Caller:
    body: dict[str, Any] = (
        {"name": "robot"} if actions is None else {"name": "r", "actions": actions}
    )
    response = await owner.post("/v1/api-keys", json=body)
    assert response.status == 202, await response.text()
    return as_key(owner, await response.json())


async def email_of(api: Api, user_id: str) -> str:
    await settle(api)
    return str((await (await api.admin.get(f"/v1/users/{user_id}")).json())["email"])


def change(current: str, new: str) -> dict[str, str]:
    return {"current_password": current, "new_password": new}


async def test_no_api_key_may_change_its_users_password(api: Api) -> None:
    owner = await api.tenant()
    email = await email_of(api, owner.user_id)
    for actions in (["compute:instance:read"], ["*"], None):
        robot = await key(owner, actions)
        response = await robot.post(
            "/v1/me/actions/change-password", json=change(OWNER_PASSWORD, "taken-over-password")
        )
        assert response.status == 403, (actions, await response.text())
        assert (await response.json())["code"] == "api_key_not_allowed", actions
    # The owner's password is still the owner's.
    assert (await (await api.login(email, OWNER_PASSWORD)).get("/v1/me")).status == 200


async def test_changing_a_password_needs_the_current_one(api: Api) -> None:
    owner = await api.tenant()
    email = await email_of(api, owner.user_id)
    wrong = await owner.post(
        "/v1/me/actions/change-password", json=change("not-the-password", "a-new-password-456")
    )
    assert wrong.status == 403 and (await wrong.json())["code"] == "wrong_password"
    missing = await owner.post(
        "/v1/me/actions/change-password", json={"new_password": "a-new-password-456"}
    )
    assert missing.status == 422
    assert (await owner.get("/v1/me")).status == 200, "a refused change ends no session"
    changed = await owner.post(
        "/v1/me/actions/change-password",
        json=change(OWNER_PASSWORD, "a-new-password-456"),
        headers={"X-Request-Id": "my-new-password"},
    )
    assert changed.status == 202, await changed.text()
    again = await api.login(email, "a-new-password-456")
    await settle(api)
    changes = {r["request_id"]: r for r in await audit_rows(again, action="iam:password:change")}
    assert changes["my-new-password"]["outcome"] == "succeeded"
    assert changes["my-new-password"]["tenant_id"] == tenant_of(owner)
    assert any(r["outcome"] == "failed" for r in changes.values()), "the wrong try is audited"


async def test_self_service_is_every_users_but_a_narrow_keys_only_if_listed(api: Api) -> None:
    owner = await api.tenant()
    created = await api.settled(await owner.post("/v1/projects", json={"name": "p"}))
    operation = f"/v1/operations/{created['operation_id']}"
    nobody = await api.sub_account(owner, [])  # no role at all: still itself
    for caller in (owner, nobody, await key(owner, None)):
        assert (await caller.get("/v1/me")).status == 200
    assert (await owner.get(operation)).status == 200
    narrow = await key(owner, ["iam:project:read"])
    for path in ("/v1/me", operation):
        refused = await narrow.get(path)
        assert refused.status == 403, path
        assert "API key does not grant self:" in (await refused.json())["detail"]
    listed = await key(owner, ["iam:project:read", "self:*"])
    assert (await listed.get("/v1/me")).status == 200
    assert (await listed.get(operation)).status == 200


async def test_a_key_makes_no_key_wider_than_itself(api: Api) -> None:
    owner = await api.tenant()
    maker = await key(owner, ["iam:apikey:create", "iam:project:read"])
    wider = await maker.post("/v1/api-keys", json={"name": "full", "actions": ["*"]})
    assert wider.status == 422 and "does not grant" in (await wider.json())["detail"]
    # Asking for no actions gives the making key's, not the user's.
    made = await api.settled(await maker.post("/v1/api-keys", json={"name": "same"}))
    child = as_key(owner, made)
    assert (await child.get("/v1/projects")).status == 200
    assert (await child.post("/v1/projects", json={"name": "escalated"})).status == 403
    view = await (await owner.get(f"/v1/api-keys/{made['key_id']}")).json()
    assert view["actions"] == ["iam:apikey:create", "iam:project:read"]
    narrower = await maker.post(
        "/v1/api-keys", json={"name": "reader", "actions": ["iam:project:read"]}
    )
    assert narrower.status == 202
