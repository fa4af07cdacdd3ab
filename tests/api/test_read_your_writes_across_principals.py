"""Read-your-writes for everyone: once an operation reports ``succeeded``, any caller's
read of what it wrote sees it, without knowing a position.

Two ways are proven: the operation is reported finished only once the read models hold
its writes, and a read by id waits for the read model to reach that resource's last write
in the store. Holding the resource-documents projection still (see ``paused``) turns the
race the issue saw in 2 of 20 tries into a certainty; the repeated rounds run it live.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    cheap_passwords,  # noqa: F401 (autouse fixture)
    create,
    settle,
    tenant_of,
)
from tests.api.test_read_your_writes import paused

ROUNDS = 20
STILL = 0.5
"""Seconds a call must stay unanswered while the read model is held still."""


async def new_webhook(owner: Caller) -> dict[str, Any]:
    response = await owner.post(
        "/v1/webhooks", json={"url": "https://93.184.216.34/hook", "paused": True}
    )
    assert response.status == 202, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def finished(caller: Caller, operation_id: str) -> dict[str, Any]:
    response = await caller.get(f"/v1/operations/{operation_id}", params={"wait": "10"})
    assert response.status == 200, await response.text()
    view: dict[str, Any] = await response.json()
    assert view["status"] == "succeeded", view
    return view


async def allow_private(api: Api, webhook_id: str) -> Any:
    return await api.admin.post(
        f"/v1/admin/webhooks/{webhook_id}/actions/allow-private", json={"allowed": True}
    )


async def test_a_finished_operation_waits_for_the_read_model(api: Api) -> None:
    owner = await api.tenant()
    await settle(api)
    async with paused(api):
        made = await new_webhook(owner)
        polled = asyncio.create_task(finished(owner, made["operation_id"]))
        acted = asyncio.create_task(allow_private(api, made["resource_id"]))
        done, _ = await asyncio.wait({polled, acted}, timeout=STILL)
        assert not done, "answered before the read model held the webhook"
    await asyncio.wait_for(polled, 10)
    response = await asyncio.wait_for(acted, 10)
    assert response.status == 202, await response.text()


async def test_an_admin_acts_on_a_tenants_new_webhook_every_time(api: Api) -> None:
    owner = await api.tenant()
    for _ in range(ROUNDS):
        made = await new_webhook(owner)
        await finished(owner, made["operation_id"])
        response = await allow_private(api, made["resource_id"])
        assert response.status == 202, await response.text()
        # And the other way: the admin's change is the owner's to read once it succeeded.
        await finished(api.admin, (await response.json())["operation_id"])
        view = await (await owner.get(f"/v1/webhooks/{made['resource_id']}")).json()
        assert view["allow_private"] is True, view


async def share(owner: Caller, image_id: str, tenant_id: str) -> str:
    response = await owner.post(
        f"/v1/images/{image_id}/actions/share", json={"tenant_id": tenant_id}
    )
    assert response.status == 202, await response.text()
    return str((await response.json())["operation_id"])


async def test_a_tenant_reads_an_image_shared_with_it_while_the_read_model_lags(
    api: Api,
) -> None:
    owner, other = await api.tenant(), await api.tenant()
    image = await create("img", api, owner)
    await settle(api)
    async with paused(api):
        operation = await share(owner, image, tenant_of(other))
        read = asyncio.create_task(other.get(f"/v1/images/{image}"))
        done, _ = await asyncio.wait({read}, timeout=STILL)
        assert not done, "the image was answered before the read model held the share"
    response = await asyncio.wait_for(read, 10)
    assert response.status == 200, await response.text()
    await finished(owner, operation)


async def test_a_tenant_reads_an_image_just_shared_with_it_every_time(api: Api) -> None:
    owner, other = await api.tenant(), await api.tenant()
    for _ in range(ROUNDS):
        image = await create("img", api, owner)
        await finished(owner, await share(owner, image, tenant_of(other)))
        response = await other.get(f"/v1/images/{image}")
        assert response.status == 200, await response.text()
        assert tenant_of(other) in (await response.json())["shared_with"]
