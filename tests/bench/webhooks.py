"""Webhook delivery rates on loopback: one webhook (strictly in order), and many at once.

Run: ``python -m tests.bench.webhooks [--scale 1.0]`` from the repository root. The
baseline is bare sequential POSTs to the same receiver: the ratio is what signing, the
delivery log and the cursor transaction cost on top of the HTTP round trip.
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp

from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository
from gateways.webhooks.dispatcher import WebhookDispatcher
from gateways.webhooks.policy import DeliveryPolicy
from tests.bench.common import database, report, scratch_schema, stopwatch
from tests.webhooks.receiver import Receiver
from tests.webhooks.world import SECRETS, expected, seed

POLICY = DeliveryPolicy(batch_size=500, idle_poll=0.2)


async def bare_posts(url: str, count: int) -> float:
    async with aiohttp.ClientSession() as session:
        with stopwatch() as elapsed:
            for _ in range(count):
                async with session.post(url, data=b"{}") as response:
                    await response.read()
    return count / elapsed[0]


async def delivery_rate(
    store: PostgresEventStore, receiver: Receiver, webhooks: int, each: int
) -> float:
    total = 0
    for _ in range(webhooks):
        webhook_id, tenant_id = await seed(store, receiver.url, events=each, per_save=100)
        total += len(await expected(store, webhook_id, tenant_id))
    dispatcher = WebhookDispatcher(store, Repository(store), SECRETS, POLICY)
    stop = asyncio.Event()
    before = len(receiver.acknowledged)
    with stopwatch() as elapsed:
        task = asyncio.create_task(dispatcher.run(stop))
        await receiver.until_acknowledged(before + total, timeout=600)
    stop.set()
    await task
    return (len(receiver.acknowledged) - before) / elapsed[0]


async def main(scale: float) -> None:
    receiver = Receiver()
    await receiver.up()
    try:
        baseline = await bare_posts(receiver.url, int(3000 * scale))
        async with database() as url:
            async with scratch_schema(url, "bench_whk1") as schema:
                store = await PostgresEventStore.open(url, schema, max_size=20)
                try:
                    one = await delivery_rate(store, receiver, 1, int(3000 * scale))
                finally:
                    await store.close()
            async with scratch_schema(url, "bench_whk20") as schema:
                store = await PostgresEventStore.open(url, schema, max_size=20)
                try:
                    many = await delivery_rate(store, receiver, 20, int(300 * scale))
                finally:
                    await store.close()
    finally:
        await receiver.close()
    report(
        "webhooks on loopback (deliveries/s)",
        {
            "bare sequential POSTs/s (baseline)": baseline,
            "one webhook, in order: deliveries/s": one,
            "20 webhooks at once: deliveries/s": many,
        },
        {"one webhook vs bare POSTs": one / baseline, "20 webhooks vs bare POSTs": many / baseline},
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    asyncio.run(main(parser.parse_args().scale))
