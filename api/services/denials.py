"""Denied requests, recorded off the request path: queued, batched, limited per source.

A denial (a 401, a 403, a 404 on another tenant's id) is put on a queue and the request is
answered at once, so a denial costs the caller no write and an existing foreign id is
answered in the same time as a missing one. A background task appends what the queue
holds, one append per batch, as ``denied`` operations in the event store itself: they are
covered by the hash chain (``scloud replay verify``), the audit log projects them like any
operation, and a rebuild from position 0 finds them again. Each source address has a
budget per window (``SourceBudget``); what it sends beyond is recorded as one count per
tenant aimed at. Closing the recorder appends whatever is still queued and counted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import msgspec

from api.services.denial_budget import Dropped, SourceBudget, Target
from domain import clock
from domain.metadata import Actor, CommandContext
from domain.operations.operation import DENIED, Operation
from gateways.eventstore.records import AppendRequest, NewEvent
from gateways.eventstore.repository import Repository
from gateways.waiting import wait_any
from projections.resources.queries import DocumentQueries

log = logging.getLogger(__name__)

BATCH = 500
"""Denials per append, at most."""
MAX_QUEUED = 5_000
"""Denials waiting for an append, at most; more are only counted (memory stays bounded)."""
DROPPED_ACTION = "audit:denial:dropped"
DROPPED_CODE = "denials_dropped"
NO_SOURCE = "unknown"


@dataclass(frozen=True)
class Denial:
    """One denied request, as it is queued."""

    context: CommandContext
    """The caller; its ``tenant_id`` is whose log the denial belongs in."""
    action: str
    resource_id: str | None
    code: str
    detail: str
    at: datetime
    find_tenant: bool = False
    """The tenant is the one that owns ``resource_id``: found when appending, not while the
    request waits."""

    @property
    def target(self) -> Target:
        return (None, self.resource_id) if self.find_tenant else (self.context.tenant_id, None)


class DenialRecorder:
    def __init__(
        self,
        repository: Repository,
        documents: DocumentQueries,
        *,
        per_source: int,
        window: float,
        linger: float,
    ) -> None:
        self.repository = repository
        self.documents = documents
        self.budget = SourceBudget(per_source, window)
        self.linger = linger
        """Seconds the first queued denial waits for others to share its append."""
        self._queue: list[Denial] = []
        self._arrived = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- the request side: no awaits, no I/O -------------------------------------------

    def record(self, denial: Denial) -> None:
        source = denial.context.source or NO_SOURCE
        now = time.monotonic()
        if self._stop.is_set() or len(self._queue) >= MAX_QUEUED:
            self.budget.count(source, denial.target, now, denial.at)
        elif self.budget.admit(source, denial.target, now, denial.at):
            self._queue.append(denial)
        self._idle.clear()
        self._arrived.set()

    # -- the background side ------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="denial-recorder")

    async def close(self) -> None:
        """Append everything queued and every count, ended windows or not."""
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            self._queue.extend(await self._counts(self.budget.drain()))
            await self._append_queue()
        except Exception:
            log.exception("%d denials not recorded at close", len(self._queue))
        self._queue = []
        self._idle.set()

    async def drained(self) -> None:
        """Wait until every denial queued so far is in the store (counts still open wait
        for their window to end)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while not self._stop.is_set():
            # Open counts are looked at every ``linger``, so that their windows end on time.
            idle = self.linger if self.budget.dropping else 60.0
            await wait_any(self._arrived, self._stop, timeout=idle)
            if self._stop.is_set():
                return
            if self._queue and len(self._queue) < BATCH:
                # Let the burst that woke us join the batch.
                await wait_any(self._stop, timeout=self.linger)
            self._arrived.clear()
            try:
                await self._flush()
            except Exception:  # the store is away: keep what is queued, try again later
                log.warning("denials not recorded yet (%d queued)", len(self._queue), exc_info=True)
                await wait_any(self._stop, timeout=max(self.linger, 1.0))
                self._arrived.set()

    async def _flush(self) -> None:
        self._queue.extend(await self._counts(self.budget.closed(time.monotonic())))
        await self._append_queue()
        self._idle.set()

    async def _append_queue(self) -> None:
        """Append the queue, one batch at a time; a batch leaves it once it is stored."""
        while self._queue:
            batch = self._queue[:BATCH]
            await self._append(batch)
            del self._queue[: len(batch)]

    async def _append(self, denials: list[Denial]) -> None:
        if not denials:
            return
        tenants = await self._tenants_of(d.resource_id for d in denials if d.find_tenant)
        events: list[NewEvent] = []
        for denial in denials:
            tenant = tenants.get(denial.resource_id) if denial.find_tenant else None
            events.extend(self._events(denial, tenant))
        await self.repository.store.append(AppendRequest(events=tuple(events)))

    def _events(self, denial: Denial, found: str | None) -> tuple[NewEvent, ...]:
        context = denial.context
        if denial.find_tenant:
            context = msgspec.structs.replace(context, tenant_id=found)
        # Under the time of the request, not of the append: that is when it happened.
        with clock.using(clock.ManualClock(denial.at)):
            operation = Operation(
                action=denial.action,
                resource_id=denial.resource_id,
                tenant_id=context.tenant_id,
                actor_id=context.actor.id,
                request_id=context.request_id,
                source=context.source,
                status=DENIED,
                error_code=denial.code,
                error_detail=denial.detail,
            )
            return self.repository.to_new_events(context, operation)

    async def _tenants_of(self, resource_ids: Iterable[str | None]) -> dict[str | None, str | None]:
        """The tenant owning each resource: its document, else its first event's envelope
        (operations and other streams without a document)."""
        pool = self.repository.store.pool
        found: dict[str | None, str | None] = {}
        for resource_id in set(resource_ids):
            if resource_id is None:
                continue
            document = await self.documents.get(pool, resource_id)
            if document is not None:
                found[resource_id] = document.tenant_id
                continue
            stream = await self.repository.store.read_stream(resource_id, to_version=1)
            found[resource_id] = stream[0].tenant_id if stream else None
        return found

    async def _counts(self, dropped: list[Dropped]) -> list[Denial]:
        """One record per source and tenant aimed at, of how many were not recorded."""
        if not dropped:
            return []
        tenants = await self._tenants_of(d.target[1] for d in dropped if d.target[1])
        merged: dict[tuple[str, str | None], list[Dropped]] = {}
        for d in dropped:
            tenant = tenants.get(d.target[1]) if d.target[1] else d.target[0]
            merged.setdefault((d.source, tenant), []).append(d)
        window = self.budget.window
        return [
            Denial(
                context=CommandContext(
                    actor=Actor.system("denial-recorder"), tenant_id=tenant, source=source
                ),
                action=DROPPED_ACTION,
                resource_id=None,
                code=DROPPED_CODE,
                detail=(
                    f"{sum(d.count for d in group)} more denied requests from {source} were "
                    f"not recorded one by one (over {self.budget.limit} in {window:g} s), "
                    f"from {min(d.first_at for d in group).isoformat()} "
                    f"to {max(d.last_at for d in group).isoformat()}"
                ),
                at=max(d.last_at for d in group),
            )
            for (source, tenant), group in merged.items()
        ]
