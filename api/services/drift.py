"""Drift healing: what a host reports running against what the platform says should be there.

Hosts publish their observed guests on ``observed.host.<host>`` (plain NATS, each report
replacing the last: see hostd/streams.py), so this is a plain subscription, not a durable
consumer; a report lost is followed by the next. Each report of a host the platform knows is
compared with the instances' documents (status and host_id) and a difference is confirmed
on the instance's aggregate before it is acted on:

- running here, found stopped (crashed, paused) → started again: ``DriftDetected`` then a
  step to ``starting``, sent to the host as any start is; found missing → rebuilt the same
  way through ``building`` (the host defines it again from its spec, keeping its disk);
- stopped here, found running → stopped through ``stopping``;
- found here but placed elsewhere, purged, or running while in the recycle bin →
  ``DriftDetected`` alone, for which the dispatcher tells the host ``ensure_absent``
  (``ensure_stopped`` for the recycle bin); a guest no instance is → ``UnknownGuestFound``
  on the host, and ``ensure_absent``.

An instance in error after a migration whose end nobody saw (its deadline passed) is settled
where one of its two hosts finds the guest, running or stopped: ``MigrationSettled``, after
which the other host is told to remove what it holds of it (see api/services/migration.py).
An instance in error whose host let go of its claim (a build that failed or timed out) but
reports its guest running (the build's outcome came late) has it stopped there:
``DriftDetected`` alone, ``ensure_stopped``; it stays in error.

Left alone: an instance in a transitional step (its outcome is pending), any other one in
error (where its guest is may be unknown, or its room is still held), a stopped one whose
guest is missing (its next start builds it), and any instance whose last event is not older
than the report (by ``margin`` seconds).

Debounce: a drift is healed only when ``confirmations`` (2) reports in a row show it, so a
guest missing from one report is not rebuilt. While a step heals it the instance is
transitional, hence left alone; a heal sent by its event alone is not sent again to that host
before its deadline (recorded on the instance; in memory for unknown guests). Each heal is a
command of the system actor ``drift``, so an Operation and an audit entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import msgspec
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from api.services import migration
from api.services.executor import CommandExecutor, CommandFailed, Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.compute.instance import DEADLINES, ERROR, PURGED, RUNNING, STOPPED, STOPPING, Instance
from domain.errors import DomainError, NotFound
from domain.inventory.host import Host
from domain.metadata import Actor, CommandContext
from gateways.bus import hostwire
from gateways.bus.hostwire import ObservedState
from gateways.eventstore.schema import checked_schema
from gateways.waiting import wait_any
from hostd.streams import OBSERVED_PREFIX

log = logging.getLogger(__name__)
ACTOR = Actor.system("drift")
ABSENT = "absent"
CONFIRMATIONS = 2
"""Reports in a row that must show a drift before it is healed."""
MARGIN = 1.0
"""Seconds: a report received less than this after an instance's last event may predate it."""
HOSTS_REFRESH = 1.0
"""Seconds between reads of the host list when a report names a host not known yet."""
BATCH = 500
"""Hosts whose documents are read in one query."""
UNKNOWN_RETRY = DEADLINES[STOPPING]
"""How long a removal of an unknown guest is left to work before it is sent again."""
SETTLE = "settle"
"""What an instance in error expects of a host that reports its guest: to learn where it is."""


class _Doc(msgspec.Struct, frozen=True):
    id: str
    version: int
    tenant_id: str | None
    status: str
    host_id: str | None
    updated_at: datetime


class DriftHealer:
    def __init__(
        self,
        executor: CommandExecutor,
        schema: str,
        nc: NATS,
        *,
        prefix: str = OBSERVED_PREFIX,
        confirmations: int = CONFIRMATIONS,
        margin: float = MARGIN,
    ) -> None:
        self.executor = executor
        self.repository = executor.repository
        self.pool = executor.repository.store.pool
        self.nc = nc
        self.prefix = prefix
        self.confirmations = confirmations
        self.margin = timedelta(seconds=margin)
        self._documents = f"{checked_schema(schema)}.resource_documents"
        self.latest: dict[str, tuple[ObservedState, datetime]] = {}
        """The newest report of each host not checked yet, with when it arrived."""
        self.arrived = asyncio.Event()
        self.seen: dict[str, dict[str, tuple[str, str, int]]] = {}
        """host → instance → (expected, observed, reports in a row showing it)."""
        self.unknown_until: dict[tuple[str, str], datetime] = {}
        self.hosts: set[str] = set()
        self._hosts_read = -HOSTS_REFRESH
        self.heals = 0
        """Heals started by this process."""

    # -- reports in ------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        try:
            report = hostwire.decode_observed(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as error:
            log.warning("drift: unreadable observed-state report: %s", error)
            return
        self.latest[report.host_id] = (report, clock.now())
        self.arrived.set()

    async def run(self, stop: asyncio.Event) -> None:
        async def on_report(msg: Msg) -> None:
            self.receive(msg.data)

        subscription = await self.nc.subscribe(f"{self.prefix}.*", cb=on_report)
        try:
            while not stop.is_set():
                self.arrived.clear()
                reports, self.latest = self.latest, {}
                try:
                    await self.check_all(list(reports.values()))
                except Exception as error:  # the database hiccuped: the next reports
                    log.warning("drift: %s", error)
                await wait_any(self.arrived, stop, timeout=1.0)
        finally:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def known(self, host_id: str) -> bool:
        if host_id not in self.hosts and time.monotonic() - self._hosts_read >= HOSTS_REFRESH:
            self._hosts_read = time.monotonic()
            rows = await self.pool.fetch(
                f"SELECT resource_id FROM {self._documents} WHERE kind = 'hst'"  # noqa: S608
            )
            self.hosts = {row[0] for row in rows}
        return host_id in self.hosts

    # -- comparing -------------------------------------------------------------------

    async def check_all(self, reports: list[tuple[ObservedState, datetime]]) -> None:
        """Check a round's reports, the documents of up to ``BATCH`` hosts read at once."""
        known = [(r, at) for r, at in reports if await self.known(r.host_id)]
        for start in range(0, len(known), BATCH):
            batch = known[start : start + BATCH]
            docs = await self.documents([report for report, _ in batch])
            for report, at in batch:
                try:
                    await self.check(report, at, docs)
                except Exception as error:  # one host's heal failed: the others go on
                    log.warning("drift: report of %s: %s", report.host_id, error)

    async def documents(self, reports: list[ObservedState]) -> dict[str, _Doc]:
        """The instances placed on the reports' hosts or named in them."""
        rows = await self.pool.fetch(
            f"SELECT resource_id, version, tenant_id, view->>'status', "  # noqa: S608
            f"view->>'host_id', updated_at FROM {self._documents} WHERE kind = 'i' "
            "AND (view->>'host_id' = ANY($1::text[]) OR resource_id = ANY($2::text[]))",
            [report.host_id for report in reports],
            [i for report in reports for i in report.instances],
        )
        return {row[0]: _Doc(*row) for row in rows}

    async def check(
        self, report: ObservedState, at: datetime, docs: dict[str, _Doc] | None = None
    ) -> list[tuple[str, str]]:
        """Compare one report (received ``at``) with the documents; heal what it confirms.
        (instance, action) of each heal started."""
        host_id = report.host_id
        if not await self.known(host_id):
            return []  # another platform's host (one NATS, several platforms), or not yet ours
        if docs is None:
            docs = await self.documents([report])
        placed = {d.id for d in docs.values() if d.host_id == host_id and d.status != PURGED}
        before = self.seen.get(host_id, {})
        now_seen: dict[str, tuple[str, str, int]] = {}
        confirmed: list[tuple[str, str, _Doc | None]] = []
        for instance_id in sorted(placed | set(report.instances)):
            observed = str(report.instances.get(instance_id, ABSENT))
            doc = docs.get(instance_id)
            if doc is None:
                expected: str | None = ABSENT
            elif doc.updated_at > at - self.margin:
                continue  # the report may predate its last step
            elif doc.status == ERROR:
                if observed not in (RUNNING, STOPPED):
                    continue
                expected = SETTLE
            else:
                expected = Instance.expected_on(doc.status, doc.host_id, host_id)
            if expected != SETTLE and Instance.heal_for(expected, observed) is None:
                continue
            assert expected is not None
            earlier = before.get(instance_id)
            count = earlier[2] + 1 if earlier and earlier[:2] == (expected, observed) else 1
            if count < self.confirmations:
                now_seen[instance_id] = (expected, observed, count)
            else:
                confirmed.append((instance_id, observed, doc))
        self.seen[host_id] = now_seen
        for key in [k for k in self.unknown_until if k[0] == host_id]:
            if key[1] not in report.instances:
                del self.unknown_until[key]  # gone: should it come back, it is removed again
        healed: list[tuple[str, str]] = []
        for instance_id, observed, doc in confirmed:
            action = await self.heal(host_id, instance_id, observed, at, doc)
            if action is not None:
                healed.append((instance_id, action))
                self.heals += 1
        return healed

    # -- healing ---------------------------------------------------------------------

    async def heal(
        self, host_id: str, instance_id: str, observed: str, at: datetime, doc: _Doc | None
    ) -> str | None:
        try:
            instance = await self.repository.get(instance_id, Instance)
        except NotFound:
            return await self.remove_unknown(host_id, instance_id, observed, at)
        if instance.status == ERROR:
            return await self.settle(instance, host_id, observed, at)
        if not self._heals(instance, host_id, observed, at):
            return None  # the aggregate is further than its document: nothing (yet)
        step_id = f"drift-{instance.id}-{instance.version}"

        async def heal(_: UnitOfWork, fresh: Instance) -> str | None:
            if not self._heals(fresh, host_id, observed, at):
                return None
            return fresh.detect_drift(host_id, observed, step_id)

        return await self._on_instance(instance, host_id, observed, heal)

    async def settle(
        self, instance: Instance, host_id: str, observed: str, at: datetime
    ) -> str | None:
        """An instance in error whose guest ``host_id`` found: settled there if a migration
        nobody saw end left it so (see ``Instance.settles_on``); stopped if it runs on its
        host without a claim there (see ``Instance.stop_unclaimed``); otherwise left alone."""
        if instance.modified_on > at - self.margin:
            return None
        if instance.settles_on(host_id, observed):

            async def settle(unit: UnitOfWork, fresh: Instance) -> str | None:
                settled = await migration.settle_migration(unit, fresh, host_id, observed)
                return SETTLE if settled else None

            return await self._on_instance(instance, host_id, observed, settle)
        if observed != RUNNING or instance.host_id != host_id:
            return None
        step_id = f"drift-{instance.id}-{instance.version}"

        async def stop(unit: UnitOfWork, fresh: Instance) -> str | None:
            if fresh.id in (await unit.get(host_id, Host)).claims:
                return None  # room is held for it: an operator or a retry decides
            return fresh.stop_unclaimed(host_id, step_id)

        return await self._on_instance(instance, host_id, observed, stop)

    async def _on_instance(
        self,
        instance: Instance,
        host_id: str,
        observed: str,
        act: Callable[[UnitOfWork, Instance], Awaitable[str | None]],
    ) -> str | None:
        """One drift command on the instance (as it is at its version now): ``act`` decides
        on the fresh aggregate and names what it did, or None; the action, or None."""
        instance_id = instance.id

        async def decide(unit: UnitOfWork) -> Decided:
            action = await act(unit, await unit.get(instance_id, Instance))
            return Decided(resource_id=instance_id, body={"action": action, "host_id": host_id})

        context = CommandContext(
            actor=ACTOR,
            tenant_id=instance.tenant_id,
            command_id=f"drift:{instance_id}:{host_id}:v{instance.version}",
        )
        body = await self._run(context, "compute:instance:drift", decide)
        action = body.get("action") if body else None
        if action:
            log.info("drift: %s on %s observed %s: %s", instance_id, host_id, observed, action)
        return action if isinstance(action, str) else None

    def _heals(self, instance: Instance, host_id: str, observed: str, at: datetime) -> bool:
        if instance.modified_on > at - self.margin:
            return False
        return instance.drift_heal(host_id, observed) is not None

    async def remove_unknown(
        self, host_id: str, instance_id: str, observed: str, at: datetime
    ) -> str | None:
        """A guest no instance of this platform is: the host removes it."""
        if observed == ABSENT:
            return None
        key = (host_id, instance_id)
        until = self.unknown_until.get(key)
        if until is not None and at < until:
            return None  # its removal is in flight
        window = int(at.timestamp() // UNKNOWN_RETRY.total_seconds())
        step_id = f"drift-{host_id}-{instance_id}-{window}"

        async def decide(unit: UnitOfWork) -> Decided:
            host = await unit.get(host_id, Host)
            host.found_unknown_guest(instance_id, observed, step_id)
            return Decided(resource_id=host_id, body={"action": "ensure_absent"})

        context = CommandContext(actor=ACTOR, command_id=f"drift:{host_id}:{instance_id}:{window}")
        body = await self._run(context, "compute:host:drift", decide)
        if body is None:
            return None
        self.unknown_until[key] = at + UNKNOWN_RETRY
        log.info("drift: unknown guest %s on %s (%s): removed", instance_id, host_id, observed)
        return "ensure_absent"

    async def _run(
        self, context: CommandContext, action: str, decide: Any
    ) -> dict[str, Any] | None:
        try:
            outcome = await self.executor.run(context, action, decide)
        except CommandFailed as failed:  # recorded as a failed operation
            log.warning("%s %s: %s", action, context.command_id, failed.error.detail)
            return None
        except DomainError as error:
            log.warning("%s %s: %s", action, context.command_id, error)
            return None
        return outcome.body


async def run_drift(healer: DriftHealer, stop: asyncio.Event) -> None:
    await healer.run(stop)
