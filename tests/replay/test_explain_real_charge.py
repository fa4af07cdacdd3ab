"""``scloud replay explain-charge`` on charges a real settlement posted, through its command line.

An instance created by a request (its Operation and request id recorded as the API records
them), run under a controlled clock, stopped at 10:30 and started again at 12:00; settled
at 12:05. The 10:00-10:30 vCPU charge is explained by the instance's events up to 10:30,
the stop included and the later start not, and by the request that created it. The same
answers come from the tenant's SQLite export.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from domain import clock
from domain.compute.instance import Instance
from domain.metadata import Actor, ActorKind, CommandContext
from domain.operations.operation import SUCCEEDED, Operation
from tests.api.billing_world import BillingWorld, billing_world
from tests.api.conftest import Api, api  # noqa: F401 (the platform fixture)
from tests.replay.conftest import replay, replay_many

T0 = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
PRICES = {"vcpu": "12", "memory_gb": "4"}


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


async def requested_instance(
    world: BillingWorld, tenant_id: str, user_id: str
) -> tuple[Instance, str]:
    """An instance created at T0 by a request, as the API saves one (with its Operation),
    and running 20 seconds later; and the Operation's id."""
    world.clock.set(T0)
    with clock.using(world.clock):
        instance = Instance(
            tenant_id=tenant_id,
            project_id=None,
            name="explained",
            region_id=world.region_id,
            flavor_id="flv-" + "0" * 26,
            image_id="img-" + "0" * 26,
            vcpus=2,
            memory_mb=2048,
            disk_gb=20,
            preemptible=False,
            server_group_id=None,
            requested_at=T0,
        )
        operation = Operation(
            action="compute:instance:create",
            resource_id=instance.id,
            tenant_id=tenant_id,
            actor_id=user_id,
            request_id="req-launch-1",
            source="192.0.2.7",
            status=SUCCEEDED,
        )
        context = CommandContext(
            actor=Actor(ActorKind.USER, user_id),
            tenant_id=tenant_id,
            command_id=f"{user_id}:launch-1",
            request_id="req-launch-1",
            source="192.0.2.7",
        )
        await world.api.platform.repository.save(context, instance, operation)
    world.clock.set(T0 + timedelta(seconds=20))
    with clock.using(world.clock):
        instance.schedule("hst-" + "0" * 26, "stp-build", {})
        instance.host_reported("stp-build", "running", None)
    await world.save(tenant_id, instance)
    return instance, operation.id


async def test_a_settled_charge_is_explained_back_to_the_request(
    api: Api,  # noqa: F811
    database_url: str,
    tmp_path: Path,
) -> None:
    world = await billing_world(api, T0, PRICES)
    owner = await api.tenant()
    tenant = owner.tenant_id
    assert tenant is not None
    instance, operation_id = await requested_instance(world, tenant, owner.user_id)
    await world.step(tenant, instance, T0 + timedelta(minutes=90), "stop")  # 10:30
    await world.step(tenant, instance, T0 + timedelta(hours=3), "start")  # 12:00
    assert await world.settle(T0 + timedelta(hours=3, minutes=5)) == 4
    (charge,) = [
        c
        for c in await world.charges(tenant)
        if c["dimension"] == "vcpu" and c["started_at"] == T0 + timedelta(hours=1)
    ]
    charge_id = charge["charge_id"]
    stream = await api.platform.store.read_stream(instance.id)
    until_stop = [
        e.position for e in stream if e.envelope().occurred_at <= T0 + timedelta(hours=1.5)
    ]
    assert 2 < len(until_stop) < len(stream)

    live = ("--database-url", database_url, "--schema", world.schema)
    out = tmp_path / "export"
    exported = replay("export", "--tenant", tenant, "--out", out, *live)
    assert exported.code == 0, exported.err
    copy = ("--sqlite", out / "events.sqlite")
    text, as_json, from_copy, unknown, malformed = replay_many(
        ("explain-charge", charge_id, *live),
        ("explain-charge", charge_id, "--format", "json", *live),
        ("explain-charge", charge_id, "--format", "json", *copy),
        ("explain-charge", "chg-" + "0" * 26, *live),
        ("explain-charge", "i-not-a-charge", *live),
    )
    assert text.code == 0, text.err
    assert f"charge {charge_id}" in text.out
    assert "vcpu x 2 over [2027-03-02T10:00:00+00:00, 2027-03-02T10:30:00+00:00)" in text.out
    assert "amount 12 USD" in text.out
    assert "BillingAccount.ChargesPosted" in text.out and "(system:billing)" in text.out
    assert "started by request req-launch-1" in text.out
    assert f"operation {operation_id} compute:instance:create -> succeeded" in text.out
    for position in until_stop:
        assert f"  #{position} " in text.out
    assert f"  #{stream[-1].position} " not in text.out  # the start at 12:00 came after

    explained = json.loads(as_json.out)
    assert explained["charge"]["amount_minor"] == 12
    assert explained["resource_id"] == instance.id
    assert [e["position"] for e in explained["events"]] == until_stop
    assert [e["during"] for e in explained["events"]][-1] is True  # the stop at 10:30
    assert explained["events"][0]["during"] is False
    assert explained["events"][0]["request_id"] == "req-launch-1"
    assert explained["origin"]["command_id"] == f"{owner.user_id}:launch-1"
    assert explained["posted_by"]["operation"]["action"] == "billing:charges:post"

    assert from_copy.code == 0, from_copy.err
    assert json.loads(from_copy.out) == explained

    assert unknown.code == 1 and "unknown charge" in unknown.err and unknown.out == ""
    assert malformed.code == 2 and "is not a charge id" in malformed.err
