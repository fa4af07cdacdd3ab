"""``explain-charge``: refuses honestly while billing does not exist, and follows causation
through charge events shaped as the architecture describes them (written here by hand)."""

from __future__ import annotations

import json
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
from tests.replay.conftest import replay, replay_many

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


def test_without_charge_events_it_says_billing_is_not_built(
    project: tuple[PostgresEventStore, str], database_url: str
) -> None:
    store, _ = project
    done = replay(
        "explain-charge", "chg-1", "--database-url", database_url, "--schema", store.schema
    )
    assert done.code == 2
    assert "billing is not built yet" in done.err and done.out == ""


async def test_a_charge_is_explained_back_to_the_request(
    charged: tuple[str, str], database_url: str
) -> None:
    schema, project_id = charged
    source = ("--database-url", database_url, "--schema", schema)
    text, as_json, unknown = replay_many(
        ("explain-charge", "chg-1", *source),
        ("explain-charge", "chg-1", "--format", "json", *source),
        ("explain-charge", "chg-404", *source),
    )
    assert text.code == 0, text.err
    assert "Ledger.ChargePosted" in text.out
    assert f"{project_id} v1 Project.Created" in text.out
    assert "request req-buy-project" in text.out
    assert "iam:project:create -> succeeded" in text.out

    explained = json.loads(as_json.out)
    assert [b["resource_id"] for b in explained["caused_by"]] == [project_id]
    assert explained["resource_id"] == project_id
    assert explained["origin"]["operations"][0]["action"] == "iam:project:create"

    assert unknown.code == 1 and "unknown charge 'chg-404'" in unknown.err


async def test_history_shows_the_charge_that_followed_an_event(
    charged: tuple[str, str], database_url: str
) -> None:
    schema, project_id = charged
    done = replay("history", project_id, "--database-url", database_url, "--schema", schema)
    assert done.code == 0, done.err
    assert "charge: " in done.out and "led-acme v1 Ledger.ChargePosted" in done.out
