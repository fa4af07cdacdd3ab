"""A changed password, a new API key and changed roles are mailed to the account."""

from __future__ import annotations

import asyncio
from email.message import Message
from typing import Any

from tests.api.conftest import Api
from tests.api.fixtures_world import (
    audit_rows,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    settle,
)
from tests.api.mail_catcher import mail_catcher
from tests.support.ports import port_outside_ephemeral_range

OWNER_PASSWORD = "owner-password-123"


async def configure_mail(api: Api, port: int) -> None:
    response = await api.admin.patch(
        "/v1/admin/config",
        json={
            "mail": {
                "smtp_host": "127.0.0.1",
                "smtp_port": port,
                "security": "none",
                "from_address": "platform@scloud.test",
            }
        },
    )
    assert response.status in (200, 202), await response.text()
    await settle(api)


async def mails_to(received: list[Message], to: str, count: int) -> list[Message]:
    async def arrived() -> list[Message]:
        while len(mine := [m for m in received if m["To"] == to]) < count:
            await asyncio.sleep(0.05)
        return mine

    return await asyncio.wait_for(arrived(), 20)


async def email_of(api: Api, user_id: str) -> str:
    await settle(api)
    return str((await (await api.admin.get(f"/v1/users/{user_id}")).json())["email"])


async def test_security_changes_are_mailed_to_the_account(api: Api) -> None:
    with mail_catcher() as (port, received):
        await configure_mail(api, port)
        owner = await api.tenant()
        email = await email_of(api, owner.user_id)
        created = await owner.post("/v1/api-keys", json={"name": "deploy-bot"})
        assert created.status == 202
        colleague = await api.sub_account(owner, ["read-only"])
        colleague_email = await email_of(api, colleague.user_id)
        roles = await owner.put(
            f"/v1/users/{colleague.user_id}/permissions", json={"roles": ["operator"]}
        )
        assert roles.status == 202, await roles.text()
        role = await api.settled(
            await owner.post("/v1/roles", json={"name": "auditors", "actions": ["audit:*:read"]})
        )
        widened = await owner.put(
            f"/v1/roles/{role['resource_id']}/actions", json={"actions": ["*"]}
        )
        assert widened.status == 202, await widened.text()
        changed = await owner.post(
            "/v1/me/actions/change-password",
            json={"current_password": OWNER_PASSWORD, "new_password": "a-new-password-456"},
        )
        assert changed.status == 202, await changed.text()

        owners = await mails_to(received, email, 3)  # the owner is the tenant's contact
        subjects = sorted(str(m["Subject"]) for m in owners)
        assert subjects == [
            "A custom role of your SCloudStack tenant changed",
            "A new SCloudStack API key",
            "Your SCloudStack password was changed",
        ]
        assert all(m["From"] == "platform@scloud.test" for m in owners)
        key_mail = next(m for m in owners if "API key" in str(m["Subject"]))
        assert "deploy-bot" in key_mail.get_payload()
        (roles_mail,) = await mails_to(received, colleague_email, 1)
        assert "operator" in roles_mail.get_payload()
    # The notices and the changes are audited; the sending is, too.
    await settle(api)
    again = await api.login(email, "a-new-password-456")
    actions = {r["action"] for r in await audit_rows(again)}
    assert {"iam:password:change", "iam:apikey:create", "iam:user:update"} <= actions
    assert "iam:role:update" in actions
    sent = await audit_rows(api.admin, action="iam:notice:send")
    assert len(sent) >= 4 and all(r["outcome"] == "succeeded" for r in sent)


async def test_nothing_is_queued_without_mail_configured(api: Api) -> None:
    owner = await api.tenant()
    await owner.post("/v1/api-keys", json={"name": "quiet"})
    changed = await owner.post(
        "/v1/me/actions/change-password",
        json={"current_password": OWNER_PASSWORD, "new_password": "a-new-password-456"},
    )
    assert changed.status == 202
    await settle(api)
    notices: list[Any] = await api.platform.documents.ids_of_kind(api.platform.store.pool, "ntc")
    assert notices == []


async def test_a_mail_server_that_refuses_is_retried_then_given_up(api: Api) -> None:
    await configure_mail(api, port_outside_ephemeral_range())  # nothing listens there
    owner = await api.tenant()
    created = await owner.post("/v1/api-keys", json={"name": "unheard"})
    assert created.status == 202

    async def given_up() -> dict[str, Any]:
        while True:
            await settle(api)
            pool = api.platform.store.pool
            for notice_id in await api.platform.documents.ids_of_kind(pool, "ntc"):
                found = await api.platform.documents.get(pool, notice_id)
                if found is not None and found.view["status"] == "failed":
                    return found.view
            await asyncio.sleep(0.2)

    view = await asyncio.wait_for(given_up(), 30)
    assert view["attempts"] == 5 and "Connection" in view["last_error"]
