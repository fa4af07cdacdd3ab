"""A host's pull requests are renewed as soon as NATS comes back: the server forgets every
open pull request with the old connection, and waiting for its expiry (30 s) left hosts deaf
to their commands for half a minute after each NATS restart."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from gateways.embedded.child import free_loopback_port
from gateways.embedded.nats import nats_server_binary
from gateways.embedded.probe import jetstream_answers
from hostd.pull import PullHub

RECOVERY_BUDGET = 5.0
"""Seconds from the server's return to a command in hand (the old code took 31-32 s)."""


@contextlib.contextmanager
def nats_server(port: int, store: Path) -> Iterator[subprocess.Popen[bytes]]:
    command = [str(nats_server_binary()), "-js", "-a", "127.0.0.1", "-p", str(port)]
    process = subprocess.Popen([*command, "-sd", str(store)], stderr=subprocess.DEVNULL)
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)


async def until_answers(url: str) -> None:
    async with asyncio.timeout(20):
        while not await jetstream_answers(url):
            await asyncio.sleep(0.1)


async def test_a_pull_is_renewed_within_seconds_of_a_nats_restart(tmp_path: Path) -> None:
    port, store = free_loopback_port(), tmp_path / "js"
    url = f"nats://127.0.0.1:{port}"
    received: asyncio.Queue[bytes] = asyncio.Queue()

    def dispatch(msg: Msg) -> asyncio.Future[None]:
        received.put_nowait(msg.data)
        return asyncio.ensure_future(msg.ack())

    with nats_server(port, store):
        await until_answers(url)
        client = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
        js = client.jetstream()
        await js.add_stream(name="PULL_RECONNECT", subjects=["pull-reconnect.>"])
        await js.add_consumer(
            "PULL_RECONNECT", ConsumerConfig(durable_name="host", ack_policy=AckPolicy.EXPLICIT)
        )
        hub = PullHub(client)
        await hub.start()
        hub.add("PULL_RECONNECT", "host", dispatch, window=4)
        await js.publish("pull-reconnect.cmd", b"before")
        assert await asyncio.wait_for(received.get(), 5) == b"before"
    try:
        # SIGKILL above; the same server comes back on the same port and store.
        with nats_server(port, store):
            await until_answers(url)
            back = time.monotonic()
            async with asyncio.timeout(10):
                while not client.is_connected:
                    await asyncio.sleep(0.05)
            await js.publish("pull-reconnect.cmd", b"after")
            got = await asyncio.wait_for(received.get(), RECOVERY_BUDGET + 5)
            took = time.monotonic() - back
            assert got == b"after"
            assert took <= RECOVERY_BUDGET, f"the command arrived {took:.1f} s after NATS was back"
            await hub.close()
            await client.close()
    finally:
        if not client.is_closed:
            await client.close()
