"""Wrong passwords are limited per account and per source, and audited under the account."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from domain.identity import login_throttle
from gateways import passwords
from tests.api.conftest import Api
from tests.api.fixtures_world import (
    audit_rows,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    settle,
    tenant_of,
)

OWNER_PASSWORD = "owner-password-123"


async def sign_in(api: Api, email: str, password: str, request_id: str = "") -> Any:
    headers = {"X-Request-Id": request_id} if request_id else {}
    return await api.client.post(
        "/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )


async def owner_email(api: Api) -> tuple[Any, str]:
    owner = await api.tenant()
    await settle(api)
    email = (await (await owner.get(f"/v1/users/{owner.user_id}")).json())["email"]
    return owner, str(email)


async def test_an_account_locks_after_the_policys_failures(api: Api) -> None:
    owner, email = await owner_email(api)
    other, other_email = await owner_email(api)
    for attempt in range(5):  # the default lockout_threshold
        response = await sign_in(api, email, "wrong-password", f"guess-{attempt}")
        assert response.status == 401
    locked = await sign_in(api, email, OWNER_PASSWORD)
    assert locked.status == 429, await locked.text()
    assert (await locked.json())["code"] == "too_many_attempts"
    assert 0 < int(locked.headers["Retry-After"]) <= login_throttle.LOCKOUT_SECONDS
    # An address with no account locks the same way: a lock tells no one it exists.
    for _ in range(5):
        assert (await sign_in(api, "nobody@nowhere.example", "wrong-password")).status == 401
    assert (await sign_in(api, "nobody@nowhere.example", "wrong-password")).status == 429
    # Another account from the same address is not locked by it.
    assert (await sign_in(api, other_email, OWNER_PASSWORD)).status == 200
    # The failures are in the aimed-at tenant's own audit log, naming the account.
    await settle(api)
    denied = {r["request_id"]: r for r in await audit_rows(owner, outcome="denied")}
    for attempt in range(5):
        entry = denied[f"guess-{attempt}"]
        assert entry["tenant_id"] == tenant_of(owner) and entry["resource_id"] == owner.user_id
        assert entry["error_code"] == "unauthenticated"
    assert not [r for r in await audit_rows(other, outcome="denied") if "guess" in r["request_id"]]


async def test_a_right_password_ends_a_run_of_failures(api: Api) -> None:
    _, email = await owner_email(api)
    for _ in range(3):
        for _ in range(4):
            assert (await sign_in(api, email, "wrong-password")).status == 401
        assert (await sign_in(api, email, OWNER_PASSWORD)).status == 200


async def test_a_threshold_of_zero_never_locks_an_account(api: Api) -> None:
    _, email = await owner_email(api)
    policy = await api.admin.patch(
        "/v1/admin/config", json={"login_policy": {"lockout_threshold": 0}}
    )
    assert policy.status in (200, 202), await policy.text()
    await settle(api)
    await api.platform.identity.catch_up(api.platform.store)
    for _ in range(8):
        assert (await sign_in(api, email, "wrong-password")).status == 401
    assert (await sign_in(api, email, OWNER_PASSWORD)).status == 200


async def test_a_source_is_limited_whatever_accounts_it_tries(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(login_throttle, "SOURCE_FAILURES", 6)
    _, email = await owner_email(api)
    for n in range(6):  # each address once: no account reaches its threshold
        assert (await sign_in(api, f"spray-{n}@example.com", "wrong-password")).status == 401
    refused = await sign_in(api, email, OWNER_PASSWORD)
    assert refused.status == 429 and "Retry-After" in refused.headers


class _SlowHasher:
    """argon2's interface, blocking its thread as a real hash at a high cost would."""

    def __init__(self, real: Any) -> None:
        self.real = real

    def verify(self, password_hash: str, password: str) -> bool:
        time.sleep(0.3)
        return bool(self.real.verify(password_hash, password))

    def hash(self, password: str) -> str:
        time.sleep(0.3)
        return str(self.real.hash(password))


async def test_verifying_passwords_leaves_the_event_loop_free(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, email = await owner_email(api)
    monkeypatch.setattr(passwords, "_hasher", _SlowHasher(passwords._hasher))
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    answers = await asyncio.gather(*(sign_in(api, email, OWNER_PASSWORD) for _ in range(4)))
    done.set()
    await ticker
    assert [a.status for a in answers] == [200] * 4
    assert max(gaps) < 0.2, f"the loop stalled {max(gaps):.2f}s while a password was verified"


async def test_a_lock_holds_in_every_api_process_until_a_reset(api: Api) -> None:
    from domain.identity.login_throttle import LoginThrottle
    from tests.api.test_admin_reset_password import scloud

    owner, email = await owner_email(api)
    for _ in range(5):
        assert (await sign_in(api, email, "wrong-password")).status == 401

    async def recorded() -> None:
        while (user := api.platform.identity.user(owner.user_id)) is None or (
            user.locked_until is None
        ):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(recorded(), 10)
    # Another API process (or this one restarted) has counted nothing, and still refuses.
    counted, api.platform.login_throttle = api.platform.login_throttle, LoginThrottle()
    assert (await sign_in(api, email, OWNER_PASSWORD)).status == 429
    api.platform.login_throttle = counted
    await settle(api)
    locks = await audit_rows(owner, action="iam:user:lock")
    assert [(r["outcome"], r["resource_id"]) for r in locks] == [("succeeded", owner.user_id)]
    # The operator's reset lifts it, in the process that counted the failures too.
    code, out, err = await scloud(api, "admin", "reset-password", email)
    assert code == 0, err
    await api.platform.identity.catch_up(api.platform.store)
    password = out.split(": ", 1)[1].split()[0]
    assert (await sign_in(api, email, password)).status == 200
