"""Continuous pulls on durable consumers: a command is handed over as soon as it is stored.

nats-py's ``fetch(n)`` holds a partial batch until its timeout passes, which would delay a
lone command by the whole timeout, and a fleet of simulated hosts would need a subscription
and a polling task per host. Here one inbox subscription serves every consumer on a
connection: each consumer keeps one pull request open on the server (``batch`` = its free
slots, renewed when it expires or is used up), and every message goes to its consumer's
``dispatch`` as it arrives. Messages in hand are kept alive with in-progress acks, so a long
apply or a long queue behind one instance never reaches the ack wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

log = logging.getLogger(__name__)

Dispatch = Callable[[Msg], "asyncio.Future[None]"]
"""Take a delivered message; the future is done once the message is acked, termed or naked."""


class Puller:
    """One durable consumer's side of the hub."""

    def __init__(self, token: str, api: str, dispatch: Dispatch, window: int) -> None:
        self.token = token
        self.api = api
        self.dispatch = dispatch
        self.window = window
        self.in_hand: dict[str, Msg] = {}
        """Delivered and not yet settled, by ack subject."""
        self.outstanding = 0
        """Messages the open pull request may still deliver."""
        self.expires_at = 0.0
        self.not_before = 0.0
        self.stopped = False


class PullHub:
    def __init__(
        self,
        nc: Client,
        *,
        expires: float = 30.0,
        keepalive: float = 10.0,
        api_prefix: str = "$JS.API",
    ) -> None:
        self.nc = nc
        self.expires = expires
        self.keepalive = keepalive
        self.api_prefix = api_prefix
        self.inbox = nc.new_inbox()
        self._pullers: dict[str, Puller] = {}
        self._due: set[Puller] = set()
        self._waiter: asyncio.Future[None] | None = None
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._reconnects = nc.stats.get("reconnects", 0)

    async def start(self) -> None:
        self._sub = await self.nc.subscribe(f"{self.inbox}.*", cb=self._receive)
        self._task = asyncio.create_task(self._loop(), name="hostd-pull-hub")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    def add(self, stream: str, consumer: str, dispatch: Dispatch, *, window: int) -> Puller:
        token = consumer  # durable names are one subject token
        if token in self._pullers:
            raise ValueError(f"consumer {consumer} is already pulled by this hub")
        api = f"{self.api_prefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        puller = Puller(token, api, dispatch, window)
        self._pullers[token] = puller
        self._mark(puller)
        return puller

    def stop(self, puller: Puller) -> None:
        """Ask for nothing more; what still arrives is handed back (naked) at once."""
        puller.stopped = True

    def remove(self, puller: Puller) -> None:
        puller.stopped = True
        self._pullers.pop(puller.token, None)

    def _mark(self, puller: Puller) -> None:
        self._due.add(puller)
        if self._waiter is not None:
            _wake(self._waiter)

    async def _pause(self, seconds: float) -> None:
        """Sleep until something is due or ``seconds`` pass.

        Not ``wait_for(event.wait())``: on Python 3.11 that swallows a cancellation that
        arrives as the event is set, and the loop would then outlive ``close()``.
        """
        if self._due:
            return
        loop = asyncio.get_running_loop()
        self._waiter = waiter = loop.create_future()
        timer = loop.call_later(seconds, _wake, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    async def _receive(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is not None:
            # Status messages come on the inbox subject, which ends with the consumer name.
            puller = self._pullers.get(msg.subject.rpartition(".")[2])
            if puller is not None:
                self._status(puller, status, msg)
            return
        # Stored messages keep their own subject; the ack subject names the consumer.
        puller = self._pullers.get(_consumer_of(msg.reply))
        if puller is None or puller.stopped:
            # Delivered to a pull request of a consumer that is going away: hand it back soon
            # rather than after the ack wait (the delay keeps our own open request, which
            # cannot be withdrawn, from bouncing it straight back).
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
            return
        puller.outstanding = max(puller.outstanding - 1, 0)
        reply = msg.reply
        puller.in_hand[reply] = msg
        future = puller.dispatch(msg)
        future.add_done_callback(lambda _: self._settled(puller, reply))

    def _settled(self, puller: Puller, reply: str) -> None:
        puller.in_hand.pop(reply, None)
        self._mark(puller)

    def _status(self, puller: Puller, status: str, msg: Msg) -> None:
        if status == "100":  # idle heartbeat
            return
        # 404 no messages, 408 request expired, 409 refused (max waiting, consumer deleted,
        # leadership change): in each case that pull request is over.
        headers = msg.headers or {}
        pending = headers.get("Nats-Pending-Messages")
        if pending is not None and pending.isdigit():
            puller.outstanding = max(puller.outstanding - int(pending), 0)
        else:
            puller.outstanding = 0
        if status == "409":
            log.warning("pull on %s refused: %s", puller.api, headers.get("Description", ""))
            puller.not_before = time.monotonic() + 1.0
        self._mark(puller)

    def _reconnected(self) -> bool:
        """True once after each reconnect: the server forgot every open pull request with
        the old connection, and no 408 will ever say so."""
        count = self.nc.stats.get("reconnects", 0)
        seen, self._reconnects = self._reconnects, count
        return count != seen

    async def _loop(self) -> None:
        last_scan = last_keepalive = time.monotonic()
        while True:
            await self._pause(1.0)
            now = time.monotonic()
            due, self._due = self._due, set()
            if self._reconnected():
                for puller in self._pullers.values():
                    puller.outstanding, puller.not_before = 0, 0.0
                    due.add(puller)
            if now - last_scan >= 1.0:
                last_scan = now
                for puller in self._pullers.values():
                    # The server's 408 for an expired request may have been lost (reconnect).
                    expired = puller.outstanding and now > puller.expires_at + 2.0
                    if expired or (not puller.outstanding and puller.not_before <= now):
                        puller.outstanding = 0
                        due.add(puller)
            for puller in due:
                try:
                    await self._request(puller, now)
                except Exception as error:
                    log.warning("pull request on %s failed: %s", puller.api, error)
                    self._due.add(puller)
            if now - last_keepalive >= self.keepalive:
                last_keepalive = now
                await self._keep_alive()

    async def _request(self, puller: Puller, now: float) -> None:
        if puller.stopped or puller.outstanding or now < puller.not_before:
            return
        free = puller.window - len(puller.in_hand)
        # Wait for a quarter of the window to free up rather than ask one message at a time,
        # unless nothing is in hand at all.
        if free <= 0 or (puller.in_hand and free < max(puller.window // 4, 1)):
            return
        request = {"batch": free, "expires": int(self.expires * 1e9)}
        await self.nc.publish(
            puller.api, json.dumps(request).encode(), reply=f"{self.inbox}.{puller.token}"
        )
        puller.outstanding = free
        puller.expires_at = now + self.expires

    async def _keep_alive(self) -> None:
        for puller in list(self._pullers.values()):
            for msg in list(puller.in_hand.values()):
                with contextlib.suppress(Exception):
                    await msg.in_progress()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _consumer_of(ack_subject: str) -> str:
    """The consumer in ``$JS.ACK.<stream>.<consumer>.…`` (or the 12-token form with a domain)."""
    tokens = ack_subject.split(".")
    if len(tokens) == 9:
        return tokens[3]
    return tokens[5] if len(tokens) >= 12 else ""
