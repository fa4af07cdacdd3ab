"""Secrets shown once are stored nowhere: not in events, not in the idempotency record."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_an_api_key_secret_is_never_stored(api: Api) -> None:
    owner = await api.tenant("secrets")
    headers = {"Idempotency-Key": "key-once"}
    first = await api.settled(
        await owner.post("/v1/api-keys", json={"name": "ci"}, headers=headers)
    )
    secret = first["api_key"].rsplit(".", 1)[1]
    assert len(secret) >= 32

    again = await owner.post("/v1/api-keys", json={"name": "ci"}, headers=headers)
    repeat = await again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert repeat["key_id"] == first["key_id"] and "api_key" not in repeat

    pool = api.platform.store.pool
    schema = api.platform.settings.schema
    for table, column in (
        ("scloud_commands", "result"),
        ("scloud_events", "state"),
        ("scloud_events", "metadata"),
        ("resource_documents", "state"),
    ):
        found = await pool.fetchval(
            f"SELECT count(*) FROM {schema}.{table} WHERE position($1::bytea in {column}) > 0",
            secret.encode(),
        )
        assert found == 0, f"the secret is stored in {table}.{column}"
    # And the key works.
    key_caller_status = (
        await api.client.get("/v1/me", headers={"Authorization": f"Bearer {first['api_key']}"})
    ).status
    assert key_caller_status == 200
