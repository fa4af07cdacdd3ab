"""``history`` shows a charge event that followed a resource's event (a charge event written
here by hand, linked by causation). ``explain-charge`` on real settled charges is tested in
``test_explain_real_charge.py``."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import msgspec
import pytest

from domain.identity.project import Project
from domain.metadata import Actor, ActorKind, CommandContext
from domain.operations.operation import SUCCEEDED, Operation
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, NewEvent
from gateways.eventstore.repository import Repository
from tests.integration.conftest import drop_schema
from tests.replay.conftest import replay

CHARGE_TOPIC = "domain.billing.ledger:Ledger.ChargePosted"


@pytest.fixture
async def project(database_url: str) -> AsyncIterator[tuple[PostgresEventStore, str]]:
    """A store on a fresh schema holding one project, created by a request."""
    schema = "rplx_" + secrets.token_hex(6)
    store = await PostgresEventStore.open(database_url, schema)
    try:
        owner = Actor(ActorKind.USER, "usr-owner")
        context = CommandContext(actor=owner, tenant_id="tnt-acme", request_id="req-buy-project")
        project = Project(tenant_id="tnt-acme", name="billed", description="")
        operation = Operation(
            action="iam:project:create",
            resource_id=project.id,
            tenant_id="tnt-acme",
            actor_id=owner.id,
            request_id="req-buy-project",
            source="192.0.2.7",
            status=SUCCEEDED,
        )
        await Repository(store).save(context, project, operation)
        yield store, project.id
    finally:
        await store.close()
        await drop_schema(database_url, schema)


@pytest.fixture
async def charged(project: tuple[PostgresEventStore, str]) -> tuple[str, str]:
    """The project, and a charge event caused by its creation (as billing would write it)."""
    store, project_id = project
    (created,) = await store.read_stream(project_id)
    billing = CommandContext(
        actor=Actor.system("billing"),
        tenant_id="tnt-acme",
        correlation_id="req-buy-project",
        causation_id=created.envelope().event_id,
    )
    state = msgspec.json.encode({"charge_id": "chg-1", "resource_id": project_id})
    charge = NewEvent("led-acme", 1, CHARGE_TOPIC, state, billing.metadata())
    await store.append(AppendRequest(events=(charge,)))
    return store.schema, project_id


async def test_history_shows_the_charge_that_followed_an_event(
    charged: tuple[str, str], database_url: str
) -> None:
    schema, project_id = charged
    done = replay("history", project_id, "--database-url", database_url, "--schema", schema)
    assert done.code == 0, done.err
    assert "charge: " in done.out and "led-acme v1 Ledger.ChargePosted" in done.out
