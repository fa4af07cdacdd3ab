"""The webhook dispatcher: each tenant's events, to each of its webhooks, in position order.

One dispatcher runs at a time (it holds an advisory lock, like the relay). Each wake it:
catches the registry up, notes which tenants have new events, starts each due webhook's
cursor, replays and resumes, dead-letters webhooks that failed too often, and starts a
drain for every active webhook with something to send. A drain sends one event at a time
and stops at the first failure: a webhook sees its events in order or not at all, and
retries wait out an exponential backoff with jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from domain.errors import DomainError
from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from domain.operations.operation import SUCCEEDED, Operation
from domain.subscriptions.webhook import ACTIVE, Webhook, event_type, matches
from gateways.bus import wire
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import ConcurrencyConflict, RecordedEvent
from gateways.eventstore.repository import Repository
from gateways.eventstore.schema import notify_channel
from gateways.settings import Settings
from gateways.waiting import wait_any
from gateways.webhooks import policy as policies
from gateways.webhooks.deliveries import DeliveryLog
from gateways.webhooks.policy import DEFAULT_POLICY, DeliveryPolicy
from gateways.webhooks.records import RETRYING, Cursor, Delivery, RedeliveryRequest, Target
from gateways.webhooks.secrets import WebhookSecrets, webhook_secrets
from gateways.webhooks.sender import Attempt, WebhookSender
from gateways.webhooks.signing import Header, signature
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

_SCAN_BATCH = 5000
_KEY_CHANGED = "the platform key changed since this webhook's secret was made; rotate the secret"


def _config(target: Target) -> tuple[Any, ...]:
    """What a drain in progress relies on; if it changes, the drain stops and restarts."""
    return (
        target.status,
        target.url,
        target.event_types,
        target.allow_private,
        target.secret_salt,
        target.key_id,
    )


class WebhookDispatcher:
    def __init__(
        self,
        store: PostgresEventStore,
        repository: Repository,
        secrets: WebhookSecrets,
        policy: DeliveryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.store = store
        self.repository = repository
        self.secrets = secrets
        self.policy = policy
        self.log = DeliveryLog(store.schema)
        self.registry = ProjectionRunner(store, self.log.registry)
        self.sender = WebhookSender(policy.timeout, loopback_only=policy.loopback_only)
        self.delivered = 0
        self.failed_attempts = 0
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._dirty: dict[str, int] = {}
        """Webhooks that may have events to send, with a count of marks (see ``_drain``)."""
        self._config: dict[str, tuple[Any, ...]] = {}
        self._known: set[str] = set()
        self._seen = 0
        self._dead_lettered: set[tuple[str, int, int]] = set()
        self._paused: set[tuple[str, str, int, int]] = set()

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the dispatcher lock, then deliver until ``stop`` is set."""
        async with _leadership(self.store, stop, self._wake) as leader:
            if not leader:
                return
            await self.setup()
            async with self.sender:
                try:
                    await self._loop(stop)
                finally:
                    for task in self._tasks.values():
                        task.cancel()
                    await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def setup(self) -> None:
        await self.log.ensure(self.store.pool)
        await self.registry.setup()
        self._seen = await self.store.last_position()

    async def _loop(self, stop: asyncio.Event) -> None:
        pause = self.policy.backoff_initial
        while not stop.is_set():
            self._wake.clear()
            try:
                timeout = await self.tick()
                pause = self.policy.backoff_initial
            except Exception as error:
                # The database may be restarting; every step is safe to redo from the top.
                log.warning("webhooks: %s; retrying in %.1fs", error, pause)
                timeout, pause = pause, min(pause * 2, self.policy.backoff_cap)
            await wait_any(self._wake, stop, timeout=timeout)

    async def tick(self) -> float:
        """One look at everything; returns how long it may sleep if nothing wakes it."""
        pool = self.store.pool
        await self.registry.catch_up()
        targets = {t.webhook_id: t for t in await self.log.targets(pool)}
        tenants = await self._tenants_with_new_events(bool(targets))
        now = datetime.now(UTC)
        timeout = self.policy.idle_poll
        self._config = {key: _config(t) for key, t in targets.items()}
        for target in targets.values():
            webhook_id = target.webhook_id
            cursor = await self.log.sync(pool, target)
            if cursor is None:
                continue
            news = webhook_id not in self._known or cursor is not target.cursor
            if news or target.tenant_id in tenants:
                self._mark(webhook_id)  # new to us (a restart), replayed, resumed, or new events
            self._known.add(webhook_id)
            if target.status != ACTIVE or webhook_id in self._tasks:
                continue
            limit = self.policy.max_failures
            if limit is not None and cursor.failures >= limit:
                await self._dead_letter(target, cursor)
                continue
            if self._failed_too_long(cursor, now):
                await self._pause_failing(target, cursor)
                continue
            if webhook_id not in self._dirty:
                continue
            wait = (cursor.next_attempt_at - now).total_seconds()
            if wait > 0:
                timeout = min(timeout, wait)
            elif len(self._tasks) < self.policy.concurrency:
                self._start(webhook_id, self._drain(target, cursor, self._dirty[webhook_id]))
        for pending in await self.log.pending_redeliveries(pool):
            request = pending.request
            key = f"redelivery:{request.position}"
            target_of_request = targets.get(request.webhook_id)
            if key in self._tasks or target_of_request is None:
                continue
            due = pending.delivery.next_attempt_at if pending.delivery else None
            wait = 0.0 if due is None else (due - now).total_seconds()
            if wait > 0:
                timeout = min(timeout, wait)
            elif len(self._tasks) < self.policy.concurrency:
                self._start(key, self._redeliver(target_of_request, request))
        return max(timeout, 0.0)

    async def _tenants_with_new_events(self, wanted: bool) -> set[str]:
        tenants: set[str] = set()
        if not wanted:  # no webhooks anywhere: skip ahead without reading
            self._seen = await self.store.last_position()
            return tenants
        while True:
            batch = await self.store.read_all(after=self._seen, limit=_SCAN_BATCH)
            if not batch:
                return tenants
            tenants.update(e.tenant_id for e in batch if e.tenant_id is not None)
            self._seen = batch[-1].position
            if len(batch) < _SCAN_BATCH:
                return tenants

    def _mark(self, webhook_id: str) -> None:
        self._dirty[webhook_id] = self._dirty.get(webhook_id, 0) + 1

    def _start(self, key: str, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job)
        self._tasks[key] = task

        def finished(done: asyncio.Task[None]) -> None:
            self._tasks.pop(key, None)
            self._wake.set()
            if not done.cancelled() and done.exception() is not None:
                log.error("webhooks: %s failed", key, exc_info=done.exception())

        task.add_done_callback(finished)

    # -- one webhook -------------------------------------------------------------------

    async def _drain(self, target: Target, cursor: Cursor, mark: int) -> None:
        """Send what is due, in order, until caught up, a failure, or a change of plan."""
        webhook_id, pool = target.webhook_id, self.store.pool
        config = _config(target)
        # The tick's snapshot may predate a drain that finished while the tick ran.
        cursor = await self.log.cursor(pool, webhook_id) or cursor
        position, expected = cursor.position, (cursor.position, cursor.replay_seq)
        while True:
            events = await self.store.read_all(
                after=position, limit=self.policy.batch_size, tenant_id=target.tenant_id
            )
            passed = position
            for event in events:
                if not matches(target.event_types, event.topic):
                    passed = event.position
                    continue
                if self._config.get(webhook_id) != config:
                    return  # paused, deleted or edited meanwhile: the next tick decides
                reuse = cursor.pending_position == event.position and cursor.pending_delivery_id
                delivery = _delivery(target, event, reuse or new_id("dlv"))
                attempt = await self._attempt(target, delivery, event)
                due = datetime.now(UTC) + timedelta(
                    seconds=0 if attempt.ok else self.policy.backoff(cursor.failures + 1)
                )
                failures = await self.log.record(
                    pool, delivery, attempt, expected=expected, next_attempt_at=due
                )
                if failures is None or not attempt.ok:
                    self.failed_attempts += not attempt.ok
                    return  # replayed meanwhile, or waiting out the backoff
                self.delivered += 1
                position = passed = event.position
                expected = (position, cursor.replay_seq)
            if passed > position:
                if self._config.get(webhook_id) != config:
                    return  # the filters may have changed: let the next drain judge these
                if not await self.log.advance(pool, webhook_id, expected, passed):
                    return
                position, expected = passed, (passed, cursor.replay_seq)
            if len(events) < self.policy.batch_size:
                if self._dirty.get(webhook_id) == mark:
                    del self._dirty[webhook_id]  # nothing was marked while we drained
                return

    async def _attempt(self, target: Target, delivery: Delivery, event: RecordedEvent) -> Attempt:
        if target.key_id != self.secrets.key_id:
            return Attempt(status_code=None, latency_ms=0.0, error=_KEY_CHANGED)
        secret = self.secrets.secret(target.webhook_id, target.secret_salt)
        body = msgspec.json.encode(wire.export(event))
        headers: dict[str, str] = {
            Header.SIGNATURE: signature(secret, int(time.time()), body),
            Header.EVENT_ID: delivery.event_id,
            Header.DELIVERY_ID: delivery.delivery_id,
            Header.EVENT_TYPE: delivery.event_type,
            Header.POSITION: str(event.position),
        }
        return await self.sender.send(target.url, body, headers, allow_private=target.allow_private)

    async def _redeliver(self, target: Target, request: RedeliveryRequest) -> None:
        """One attempt of a manual redelivery: the first, or a retry once the backoff is over.

        The tick's list of pending requests may predate an attempt that finished while the
        tick ran (its task gone, its outcome committed after the list was read): sending on
        the list's word would deliver the event twice. So the request's state is read
        afresh here, after any earlier attempt of it committed.
        """
        pool = self.store.pool
        earlier = await self.log.redelivery(pool, request.position)
        if earlier is not None and (
            earlier.status != RETRYING
            or (earlier.next_attempt_at is not None and earlier.next_attempt_at > _now())
        ):
            return  # done (succeeded or given up), or its next attempt is not due yet
        found = await self.store.read_all(
            after=request.event_position - 1,
            until=request.event_position,
            limit=1,
            tenant_id=target.tenant_id,
        )
        if not found:
            log.error(
                "webhooks: redelivery %s: no event at %s", request.position, request.event_position
            )
            return
        delivery_id = earlier.delivery_id if earlier is not None else new_id("dlv")
        delivery = _delivery(target, found[0], delivery_id, redelivery_of=request.delivery_id)
        attempt = await self._attempt(target, delivery, found[0])
        failures = (earlier.attempts if earlier is not None else 0) + 1
        # A failed attempt is retried like any delivery's (one timeout must not lose it), up
        # to the number of failures that would dead-letter the webhook.
        await self.log.record_redelivery(
            pool,
            request,
            delivery,
            attempt,
            expected=earlier,
            final=failures >= (self.policy.max_failures or self.policy.redelivery_attempts),
            next_attempt_at=_now() + timedelta(seconds=self.policy.backoff(failures)),
        )

    def _failed_too_long(self, cursor: Cursor, now: datetime) -> bool:
        since = cursor.failing_since
        allowed = timedelta(hours=self.policy.pause_after_hours)
        return cursor.failures > 0 and since is not None and now - since >= allowed

    async def _pause_failing(self, target: Target, cursor: Cursor) -> None:
        """Pause a target that failed for hours: an event the tenant sees, an audit entry.

        The cursor stays where it is, so a resume sends the event it stopped at, then the
        rest in order; the owner hears of it on the tenant's own stream (SSE, NATS, any
        other webhook), as ``Webhook.PausedForFailures``.
        """
        key = ("pause", target.webhook_id, cursor.replay_seq, cursor.resume_seq)
        if key in self._paused or cursor.failing_since is None:
            return
        pool, pending = self.store.pool, cursor.pending_delivery_id
        error = (await self.log.last_error(pool, pending) if pending else None) or "failed"
        context = CommandContext(
            actor=Actor.system("webhooks"),
            tenant_id=target.tenant_id,
            command_id="webhooks:pause:{}:{}:{}".format(*key[1:]),
        )
        while True:
            try:
                webhook = await self.repository.get(target.webhook_id, Webhook)
                webhook.pause_for_failures(
                    cursor.pending_position or cursor.position,
                    cursor.failures,
                    cursor.failing_since,
                    error,
                )
                audit = Operation(
                    action="monitor:webhook:pause",
                    resource_id=webhook.id,
                    tenant_id=target.tenant_id,
                    actor_id=context.actor.id,
                    request_id=None,
                    source=None,
                    status=SUCCEEDED,
                    error_detail=webhook.pause_reason,
                )
                await self.repository.save(context, webhook, audit)
            except ConcurrencyConflict:
                continue  # the tenant changed it meanwhile: decide again
            except DomainError:
                pass  # paused or deleted meanwhile: nothing to record
            break
        self._paused.add(key)

    async def _dead_letter(self, target: Target, cursor: Cursor) -> None:
        """Stop delivering after too many failures in a row, as an event the tenant sees."""
        key = (target.webhook_id, cursor.replay_seq, cursor.resume_seq)
        if key in self._dead_lettered:
            return
        pool = self.store.pool
        pending = cursor.pending_delivery_id
        error = (await self.log.last_error(pool, pending) if pending else None) or "failed"
        context = CommandContext(
            actor=Actor.system("webhooks"),
            tenant_id=target.tenant_id,
            command_id="webhooks:dead-letter:{}:{}:{}".format(*key),
        )
        while True:
            try:
                webhook = await self.repository.get(target.webhook_id, Webhook)
                webhook.dead_letter(
                    cursor.pending_position or cursor.position, cursor.failures, error
                )
                await self.repository.save(context, webhook)
            except ConcurrencyConflict:
                continue  # the tenant changed it meanwhile: decide again
            except DomainError:
                pass  # paused or deleted meanwhile: nothing to record
            break
        if pending is not None:
            await self.log.give_up(pool, pending)
        self._dead_lettered.add(key)


def webhook_dispatcher(
    store: PostgresEventStore, repository: Repository, settings: Settings
) -> WebhookDispatcher:
    """The dispatcher a worker runs, configured from ``settings``."""
    return WebhookDispatcher(
        store, repository, webhook_secrets(settings), policies.configured(settings)
    )


def _now() -> datetime:
    return datetime.now(UTC)


def _delivery(
    target: Target, event: RecordedEvent, delivery_id: str, redelivery_of: str | None = None
) -> Delivery:
    return Delivery(
        delivery_id=delivery_id,
        webhook_id=target.webhook_id,
        tenant_id=target.tenant_id,
        event_id=event.envelope().event_id,
        position=event.position,
        event_type=event_type(event.topic),
        resource_id=event.originator_id,
        redelivery_of=redelivery_of,
    )


@contextlib.asynccontextmanager
async def _leadership(
    store: PostgresEventStore, stop: asyncio.Event, wake: asyncio.Event
) -> AsyncIterator[bool]:
    """Wait for the dispatcher's advisory lock (or ``stop``); yields True once held.

    The same connection listens for appends, so the dispatcher holds one connection.
    """
    key = f"scloud-webhooks:{store.schema}"
    channel = notify_channel(store.schema)

    def on_notify(*_: object) -> None:
        wake.set()

    conn = await store.pool.acquire()
    try:
        while not stop.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock(hashtext($1))", key):
                await conn.add_listener(channel, on_notify)
                try:
                    yield True
                finally:
                    with contextlib.suppress(Exception):
                        await conn.remove_listener(channel, on_notify)
                        await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", key)
                return
            await wait_any(stop, timeout=1.0)
        yield False
    finally:
        await store.pool.release(conn)
