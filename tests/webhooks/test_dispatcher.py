"""The dispatcher itself: one leader at a time, and a killed one leaves nothing half done."""

from __future__ import annotations

import asyncio
from typing import Any

from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository
from gateways.webhooks.dispatcher import WebhookDispatcher
from tests.webhooks.conftest import FAST, eventually
from tests.webhooks.receiver import Receiver
from tests.webhooks.world import SECRETS, expected, seed


async def test_a_killed_leader_is_replaced_and_nothing_is_lost_or_logged_twice(
    store: PostgresEventStore, receivers: Any
) -> None:
    receiver: Receiver = await receivers()
    webhook_id, tenant_id = await seed(store, receiver.url, events=400)
    wanted = [e.envelope().event_id for e in await expected(store, webhook_id, tenant_id)]
    assert len(wanted) > 400  # the role's events, and the webhook's own after its creation

    first, second = (WebhookDispatcher(store, Repository(store), SECRETS, FAST) for _ in "ab")
    stops = asyncio.Event(), asyncio.Event()
    tasks = [asyncio.create_task(d.run(s)) for d, s in zip((first, second), stops, strict=True)]
    try:
        await eventually(lambda: len(receiver.acknowledged) >= 120)
        leaders = [d for d in (first, second) if d.delivered]
        assert len(leaders) == 1  # the other waits for the lock
        leader = 0 if leaders[0] is first else 1
        tasks[leader].cancel()  # killed mid-stream, with a request in flight or about to be
        await asyncio.gather(tasks[leader], return_exceptions=True)
        await eventually(lambda: set(receiver.first_acknowledged()) >= set(wanted), 30)
        assert (second, first)[leader].delivered > 0
    finally:
        for stop in stops:
            stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 10)

    received = list(receiver.first_acknowledged())
    assert received == wanted  # every event of the tenant, in position order, nothing else
    assert len(receiver.acknowledged) - len(wanted) <= 1  # at most the one in flight
    logged = await store.pool.fetch(
        f"SELECT event_id, count(*) FROM {store.schema}.webhook_deliveries "
        "WHERE webhook_id = $1 GROUP BY event_id",
        webhook_id,
    )
    assert len(logged) == len(wanted) and {row[1] for row in logged} == {1}
    cursor = await store.pool.fetchval(
        f"SELECT position FROM {store.schema}.webhook_cursors WHERE webhook_id = $1", webhook_id
    )
    assert (
        cursor == (await store.read_all(after=0, limit=1_000_000, tenant_id=tenant_id))[-1].position
    )
