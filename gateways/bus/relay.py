"""The relay: every stored event, once and in order, into a JetStream stream.

PostgreSQL stays the source of truth; the stream is transport and is rebuilt from the
store when it is empty. Three things make "exactly once, in order" hold across crashes:
- the relay resumes after the position carried by the stream's last message;
- every message carries its position as ``Nats-Msg-Id``, so a resend is dropped by the
  server's duplicate window;
- every message expects the previous position as the stream's last message id, so a
  message can never be stored after a gap, even with many publishes in flight.
Only one relay publishes at a time: it holds a PostgreSQL advisory lock while it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from nats.js import JetStreamContext
from nats.js.api import Header, PubAck, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from gateways.bus import wire
from gateways.bus.subjects import EVENTS_PREFIX, event_subject
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import RecordedEvent
from gateways.waiting import wait_any

log = logging.getLogger(__name__)

POSITION_HEADER = "Scloud-Position"


class EventRelay:
    def __init__(
        self,
        store: PostgresEventStore,
        js: JetStreamContext,
        *,
        stream: str = "SCLOUD_EVENTS",
        prefix: str = EVENTS_PREFIX,
        window: int = 256,
        batch_size: int = 1000,
        idle_poll: float = 1.0,
    ) -> None:
        self.store = store
        self.js = js
        self.stream = stream
        self.prefix = prefix
        self.window = window
        self.batch_size = batch_size
        self.idle_poll = idle_poll
        self.published = 0
        """Position of the last event known to be in the stream."""

    async def ensure_stream(self) -> None:
        config = StreamConfig(
            name=self.stream,
            subjects=[f"{self.prefix}.>"],
            storage=StorageType.FILE,
            duplicate_window=120.0,
        )
        try:
            await self.js.stream_info(self.stream)
        except NotFoundError:
            await self.js.add_stream(config)

    async def last_published(self) -> int:
        """The position carried by the stream's last message (0 when empty)."""
        info = await self.js.stream_info(self.stream)
        if info.state.messages == 0:
            return 0
        message = await self.js.get_msg(self.stream, seq=info.state.last_seq)
        headers = message.headers or {}
        return int(headers.get(Header.MSG_ID, headers.get(POSITION_HEADER, "0")))

    async def publish(self, events: Sequence[RecordedEvent]) -> None:
        """Publish ``events`` (which follow ``self.published``) with a window in flight."""
        pending: list[asyncio.Future[PubAck]] = []
        previous = self.published
        for event in events:
            headers = {
                Header.MSG_ID: str(event.position),
                POSITION_HEADER: str(event.position),
            }
            if previous:
                headers[Header.EXPECTED_LAST_MSG_ID] = str(previous)
            subject = event_subject(event.tenant_id, event.originator_id, event.topic, self.prefix)
            future = await self.js.publish_async(
                subject, wire.encode(event), headers=headers, stream=self.stream
            )
            pending.append(future)
            previous = event.position
            if len(pending) >= self.window:
                await self._settle(pending)
        await self._settle(pending)
        self.published = previous

    async def _settle(self, pending: list[asyncio.Future[PubAck]]) -> None:
        try:
            await asyncio.gather(*pending)
        finally:
            pending.clear()

    async def run_once(self) -> int:
        """Publish everything appended so far; returns how many events were sent."""
        sent = 0
        while True:
            events = await self.store.read_all(after=self.published, limit=self.batch_size)
            if not events:
                return sent
            await self.publish(events)
            sent += len(events)

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the relay lock, then follow the store until ``stop`` is set."""
        async with _leadership(self.store, stop) as leader:
            if not leader:
                return
            backoff = 0.1
            async with self.store.appended() as appended:
                while not stop.is_set():
                    appended.clear()
                    try:
                        await self.ensure_stream()
                        self.published = await self.last_published()
                        await self.run_once()
                        backoff = 0.1
                    except Exception as error:
                        # Anything may fail mid-window; resuming from the stream's last
                        # message is always correct, so log, wait and start over.
                        log.warning("relay: %s; retrying in %.1fs", error, backoff)
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 5.0)
                        continue
                    await wait_any(appended, stop, timeout=self.idle_poll)


@contextlib.asynccontextmanager
async def _leadership(store: PostgresEventStore, stop: asyncio.Event) -> AsyncIterator[bool]:
    """Wait for the relay's advisory lock (or ``stop``); yields True once held."""
    key = f"scloud-relay:{store.schema}"
    conn = await store.pool.acquire()
    try:
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
                try:
                    yield True
                finally:
                    with contextlib.suppress(Exception):
                        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 1.0)
        yield False
    finally:
        await store.pool.release(conn)
