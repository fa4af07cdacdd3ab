"""Fixtures for the host daemon tests: a NATS connection and streams of the test's own."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from hostd.streams import HostBus


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await nats.connect(nats_url, name="hostd-tests")
    yield client
    await client.drain()


@pytest.fixture
async def bus(nc: Client) -> AsyncIterator[HostBus]:
    """Stream names and subjects no other test (or a running platform) uses; removed after."""
    tag = uuid.uuid4().hex[:10]
    names = HostBus(
        commands_stream=f"T{tag}_HOST_COMMANDS",
        outcomes_stream=f"T{tag}_HOST_OUTCOMES",
        commands_prefix=f"t{tag}.cmd.host",
        outcomes_prefix=f"t{tag}.outcome.host",
        observed_prefix=f"t{tag}.observed.host",
    )
    yield names
    js = nc.jetstream()
    for stream in (names.commands_stream, names.outcomes_stream):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
