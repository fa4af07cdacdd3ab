"""``scloud admin reset-password EMAIL``: the recovery when the first admin's log is lost."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

from tests.api.conftest import ADMIN_PASSWORD, Api
from tests.api.fixtures_world import (
    audit_rows,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    settle,
)

ROOT = Path(__file__).resolve().parents[2]


async def scloud(api: Api, *args: str) -> tuple[int, str, str]:
    """Run the real command line against the test platform's store."""
    settings = api.platform.settings
    assert settings.database_url is not None
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SCLOUD_DATABASE_URL": settings.database_url,
        "SCLOUD_SCHEMA": settings.schema,
        "SCLOUD_STATE_DIR": str(settings.state_dir),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "api.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_first_admin_gets_a_new_password_printed_once(api: Api) -> None:
    email = api.platform.settings.admin_email
    code, out, err = await scloud(api, "admin", "reset-password", email.upper())
    assert code == 0, err
    found = re.search(r"New password for \S+: (\S+)", out)
    assert found is not None, out
    password = found.group(1)
    await api.platform.identity.catch_up(api.platform.store)
    assert (await api.admin.get("/v1/me")).status == 401, "earlier sign-ins end"
    refused = await api.client.post(
        "/v1/auth/login", json={"email": email, "password": ADMIN_PASSWORD}
    )
    assert refused.status == 401
    admin = await api.login(email, password)
    await settle(api)
    resets = await audit_rows(admin, action="admin:user:reset-password")
    assert [(r["outcome"], r["actor_id"], r["source"]) for r in resets] == [
        ("succeeded", "cli:reset-password", "local")
    ]


async def test_a_tenants_user_is_reset_in_its_tenants_log(api: Api) -> None:
    owner = await api.tenant()
    await settle(api)
    email = (await (await owner.get(f"/v1/users/{owner.user_id}")).json())["email"]
    code, out, err = await scloud(api, "admin", "reset-password", email)
    assert code == 0, err
    password = out.split(": ", 1)[1].split()[0]
    again = await api.login(email, password)
    await settle(api)
    assert [r["outcome"] for r in await audit_rows(again, action="admin:user:reset-password")] == [
        "succeeded"
    ]


async def test_an_unknown_address_changes_nothing(api: Api) -> None:
    code, out, err = await scloud(api, "admin", "reset-password", "nobody@nowhere.example")
    assert code == 1 and "no account" in err and "password" not in out.lower()


def test_the_running_embedded_database_is_found_from_its_state_dir(tmp_path: Path) -> None:
    from gateways.embedded.postgres import running_url

    directory = tmp_path / "postgres"
    assert running_url(directory) is None
    (directory / "data").mkdir(parents=True)
    (directory / "superuser.password").write_text("s3cret/+\n")
    (directory / "data" / "postmaster.pid").write_text("4242\n/data\n1700000000\n54321\n\n")
    url = running_url(directory)
    assert url is not None and url.endswith("@127.0.0.1:54321/postgres")
    assert "s3cret%2F%2B" in url
