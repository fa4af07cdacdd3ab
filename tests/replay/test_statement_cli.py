"""``scloud replay statement``: a closed month's statement from the read model and, with
``--rebuild``, from the events alone — the same bytes — as CSV, JSON and PDF."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from projections.billing.queries import BillingQueries
from tests.api.billing_world import billing_world
from tests.api.conftest import Api, api  # noqa: F401 (the platform fixture)
from tests.replay.conftest import replay_many

T0 = datetime(2027, 1, 31, 21, 0, tzinfo=UTC)


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


async def test_a_statement_from_the_command_line(
    api: Api,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    world = await billing_world(api, T0, {"vcpu": "12", "disk_gb:standard": "0.5"})
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    instance = await world.launch(tenant, T0)
    await world.step(tenant, instance, T0 + timedelta(hours=4), "stop")  # into February
    await world.settle(T0 + timedelta(hours=5))  # January is closed by this round
    expected = await BillingQueries(world.schema).export(
        api.platform.store.pool, tenant, "2027-01", "csv"
    )
    assert expected is not None

    on = ("--database-url", database_url, "--schema", world.schema)
    args = ("statement", "--tenant", tenant, "--period", "2027-01")
    pdf, csv, again = tmp_path / "jan.pdf", tmp_path / "jan.csv", tmp_path / "again.csv"
    live, rebuilt, as_json, as_pdf, missing, malformed, no_sqlite = replay_many(
        (*args, "--out", csv, *on),
        (*args, "--rebuild", "--out", again, *on),
        (*args, "--format", "json", *on),
        (*args, "--format", "pdf", "--out", pdf, *on),
        ("statement", "--tenant", tenant, "--period", "2026-11", *on),  # before the tenant
        ("statement", "--tenant", tenant, "--period", "2027-13", *on),
        (*args, "--sqlite", tmp_path / "none.sqlite"),
    )
    assert live.code == 0, live.err
    assert csv.read_bytes() == expected
    assert expected.startswith(b"BillingAccountId,SubAccountId,")
    assert expected.count(b"\r\n") == 1 + 6  # 3 hours of vCPU and of disk in January
    assert rebuilt.code == 0, rebuilt.err
    assert again.read_bytes() == expected, "the events alone give the same statement"
    document = json.loads(as_json.out)
    assert document["status"] == "closed" and len(document["content_hash"]) == 64
    assert document["totals"]["billed_minor"] == 3 * (24 + 10)
    assert as_pdf.code == 0, as_pdf.err
    assert pdf.read_bytes().startswith(b"%PDF-")
    assert missing.code == 1 and "no statement for 2026-11" in missing.err
    assert malformed.code == 2
    assert no_sqlite.code == 2 and "needs --database-url" in no_sqlite.err
