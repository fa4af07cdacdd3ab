"""The API answers a signed-in tenant owner end to end."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_owner_creates_a_sub_account_and_lists_it(api: Api) -> None:
    owner = await api.tenant("acme")
    body = await api.settled(
        await owner.post(
            "/v1/users",
            json={
                "email": "dev@acme.example",
                "password": "dev-password-123",
                "roles": ["operator"],
            },
        )
    )
    listed = await (await owner.get("/v1/users")).json()
    emails = sorted(item["email"] for item in listed["items"])
    assert "dev@acme.example" in emails and len(emails) == 2
    operation = await (await owner.get(f"/v1/operations/{body['operation_id']}")).json()
    assert operation["status"] == "succeeded"
    assert operation["resource_id"] == body["resource_id"]
