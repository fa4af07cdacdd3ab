"""Manual redeliveries: sent once per request, and retried (same delivery id) when they fail."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

from domain.metadata import Actor, CommandContext
from domain.subscriptions.webhook import Webhook
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository
from gateways.webhooks.deliveries import PendingRedelivery
from gateways.webhooks.dispatcher import WebhookDispatcher
from gateways.webhooks.policy import DeliveryPolicy
from gateways.webhooks.records import Target
from tests.webhooks.conftest import FAST, eventually
from tests.webhooks.receiver import Receiver
from tests.webhooks.world import SECRETS, expected, seed


class World:
    def __init__(self, store: PostgresEventStore, receiver: Receiver) -> None:
        self.store, self.receiver = store, receiver
        self.webhook_id = self.tenant_id = ""

    async def dispatcher(self, policy: DeliveryPolicy = FAST) -> WebhookDispatcher:
        dispatcher = WebhookDispatcher(self.store, Repository(self.store), SECRETS, policy)
        await dispatcher.setup()
        return dispatcher

    async def request_redelivery(self, dispatcher: WebhookDispatcher) -> PendingRedelivery:
        """Ask for the webhook's first event again; the request as the dispatcher lists it."""
        first = (await expected(self.store, self.webhook_id, self.tenant_id))[0]
        repository = Repository(self.store)
        webhook = await repository.get(self.webhook_id, Webhook)
        webhook.redeliver("dlv-earlier", first.position)
        context = CommandContext(actor=Actor.system("tests"), tenant_id=self.tenant_id)
        await repository.save(context, webhook)
        await dispatcher.registry.catch_up()
        (pending,) = await dispatcher.log.pending_redeliveries(self.store.pool)
        return pending

    async def target(self, dispatcher: WebhookDispatcher) -> Target:
        (target,) = await dispatcher.log.targets(self.store.pool)
        return target

    async def logged(self, request_position: int) -> list[Any]:
        return list(
            await self.store.pool.fetch(
                f"SELECT delivery_id, status, attempts FROM {self.store.schema}."
                "webhook_deliveries WHERE request_position = $1",
                request_position,
            )
        )


@pytest.fixture
async def world(store: PostgresEventStore, receivers: Any) -> AsyncIterator[World]:
    receiver: Receiver = await receivers()
    made = World(store, receiver)
    made.webhook_id, made.tenant_id = await seed(store, receiver.url, events=5)
    yield made


async def test_a_request_listed_by_a_stale_tick_is_not_sent_again(world: World) -> None:
    """The race a full run found: a tick read the pending requests, the redelivery of one
    finished (committed, its task gone) while the tick ran, and the tick started it again."""
    dispatcher = await world.dispatcher()
    async with dispatcher.sender:
        stale = await world.request_redelivery(dispatcher)
        target = await world.target(dispatcher)
        await dispatcher._redeliver(target, stale.request)
        await dispatcher._redeliver(target, stale.request)  # what the stale tick would start
    assert len(world.receiver.requests) == 1
    assert [(row[1], row[2]) for row in await world.logged(stale.request.position)] == [
        ("succeeded", 1)
    ]
    assert await dispatcher.log.pending_redeliveries(world.store.pool) == []


async def test_a_failed_redelivery_is_retried_under_its_delivery_id(world: World) -> None:
    dispatcher = await world.dispatcher()
    receiver = world.receiver
    async with dispatcher.sender:
        pending = await world.request_redelivery(dispatcher)
        target = await world.target(dispatcher)
        receiver.answer = 503
        await dispatcher._redeliver(target, pending.request)
        [(delivery_id, status, attempts)] = await world.logged(pending.request.position)
        assert (status, attempts) == ("retrying", 1)
        (waiting,) = await dispatcher.log.pending_redeliveries(world.store.pool)
        assert waiting.delivery is not None and waiting.delivery.delivery_id == delivery_id
        assert waiting.delivery.next_attempt_at is not None

        receiver.answer = 204

        # The ticks (which also drain the webhook) send it again once its backoff is over.
        async def redelivered() -> bool:
            await dispatcher.tick()
            return bool((await world.logged(pending.request.position))[0][1] == "succeeded")

        await eventually(redelivered)
        for task in list(dispatcher._tasks.values()):
            await asyncio.gather(task, return_exceptions=True)
    again = [r for r in receiver.requests if r.headers["Scloud-Delivery-Id"] == delivery_id]
    assert [r.status for r in again] == [503, 204]
    assert len({r.headers["Scloud-Event-Id"] for r in again}) == 1
    assert await world.logged(pending.request.position) == [(delivery_id, "succeeded", 2)]
    assert await dispatcher.log.pending_redeliveries(world.store.pool) == []


async def test_a_redelivery_gives_up_after_max_failures(world: World) -> None:
    slow = msgspec.structs.replace(FAST, max_failures=2, backoff_initial=60.0, backoff_cap=60.0)
    dispatcher = await world.dispatcher(slow)
    world.receiver.answer = 500
    async with dispatcher.sender:
        pending = await world.request_redelivery(dispatcher)
        target = await world.target(dispatcher)
        await dispatcher._redeliver(target, pending.request)
        await dispatcher._redeliver(target, pending.request)  # not due for 30 s or more
        assert len(world.receiver.requests) == 1
        await world.store.pool.execute(
            f"UPDATE {world.store.schema}.webhook_deliveries SET next_attempt_at = now() "
            "WHERE request_position = $1",
            pending.request.position,
        )
        await dispatcher._redeliver(target, pending.request)
    [(_, status, attempts)] = await world.logged(pending.request.position)
    assert (status, attempts) == ("failed", 2)
    assert len(world.receiver.requests) == 2
    assert await dispatcher.log.pending_redeliveries(world.store.pool) == []
