"""An instance: a virtual machine's whole life, as a state machine with deadlines.

Every transitional state (building, starting, stopping, rebooting, deleting, migrating,
reinstalling, resetting the password, resizing) has a deadline. The host's outcome ends it; if
none comes in time, ``time_out`` ends it with the cause, and what the step held (its host
claim) is released by the saga.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.compute.hot_plug import Ceiling, fits_live
from domain.errors import InvalidState
from domain.secrets import secret


class ConsoleUnavailable(InvalidState):
    code = "console_unavailable"


PENDING = "pending"
BUILDING = "building"
RUNNING = "running"
STOPPING = "stopping"
STOPPED = "stopped"
STARTING = "starting"
REBOOTING = "rebooting"
DELETING = "deleting"
RECYCLED = "recycled"
PURGED = "purged"
ERROR = "error"
MIGRATING = "migrating"
PREPARING, MOVING = "preparing", "moving"
"""A migration's phases: the target prepares the disk, then the source moves the guest."""
REINSTALLING = "reinstalling"
RESETTING_PASSWORD = "resetting_password"  # noqa: S105 - a status, not a password
RESIZING = "resizing"
"""A running guest given vCPUs and memory live (hot-plug)."""

TRANSITIONAL = frozenset(
    {
        PENDING,
        BUILDING,
        STOPPING,
        STARTING,
        REBOOTING,
        DELETING,
        MIGRATING,
        REINSTALLING,
        RESETTING_PASSWORD,
        RESIZING,
    }
)
DEADLINES = {
    PENDING: timedelta(seconds=30),
    BUILDING: timedelta(seconds=180),
    STARTING: timedelta(seconds=120),
    STOPPING: timedelta(seconds=120),
    REBOOTING: timedelta(seconds=120),
    DELETING: timedelta(seconds=120),
    MIGRATING: timedelta(seconds=900),
    REINSTALLING: timedelta(seconds=300),
    RESETTING_PASSWORD: timedelta(seconds=120),
    RESIZING: timedelta(seconds=120),
}
"""How long each step may take before it is declared timed out.

A migration's deadline is longer than a host's own apply timeout (600 s), so a host that
is alive reports a stuck migration as failed (with where the guest is) before it expires.
"""
EVACUABLE = frozenset(
    {
        RUNNING,
        BUILDING,
        STARTING,
        REBOOTING,
        STOPPING,
        STOPPED,
        REINSTALLING,
        RESETTING_PASSWORD,
        MIGRATING,
        RESIZING,
    }
)
"""States an instance on a lost (or drained) host is moved from."""
PREEMPTABLE = frozenset(
    {RUNNING, BUILDING, STARTING, REBOOTING, STOPPING, STOPPED, ERROR, RECYCLED}
)
"""States a preemptible instance gives its host claim up from; a migration, a reinstall, a
password reset or a delete in flight finish first."""


class Instance(Aggregate):
    id_prefix = "i"
    secret_fields = secret(PasswordResetStarted=("password_hash",))

    # Class defaults: instances recorded before these existed load without them.
    migration: dict[str, Any] | None = None
    """While migrating: from_host_id, to_host_id, live, and the status it resumes."""
    resume: str | None = None
    """While reinstalling: the status the instance ends in (running or stopped)."""
    password: dict[str, str] | None = None
    """While resetting the password: the user and the crypt(3) SHA-512 hash (never plain)."""
    console: dict[str, Any] | None = None
    """The VNC endpoint its host last reported (host, port), while it runs."""
    preempted: dict[str, Any] | None = None
    """Its last preemption (host_id, preemption_id, reason)."""
    gpu_count: int = 0
    max_vcpus: int | None = None
    max_memory_mb: int | None = None
    """How far its guest can grow live (None: defined without room, so a resize restarts)."""
    restart: bool = False
    """While stopping for a resize: it is started again at its new size once stopped."""
    unsettled: dict[str, str] | None = None
    """In error after a migration nobody saw end (from_host_id, to_host_id): its guest is on
    one of them, and the first of them to report it there settles where it is."""

    def __init__(
        self,
        tenant_id: str,
        project_id: str | None,
        name: str,
        region_id: str,
        flavor_id: str,
        image_id: str,
        vcpus: int,
        memory_mb: int,
        disk_gb: int,
        preemptible: bool,
        server_group_id: str | None,
        requested_at: datetime,
        charge_mode: str = "on_demand",
        max_vcpus: int | None = None,
        max_memory_mb: int | None = None,
        gpu_count: int = 0,
    ) -> None:
        self.tenant_id = tenant_id
        self.project_id = project_id
        self.name = name
        self.region_id = region_id
        self.flavor_id = flavor_id
        self.image_id = image_id
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.disk_gb = disk_gb
        self.preemptible = preemptible
        self.server_group_id = server_group_id
        self.status = PENDING
        self.host_id: str | None = None
        self.step_id: str | None = None
        """The command the host is working on: outcomes for other steps are stale."""
        self.deadline: datetime | None = requested_at + DEADLINES[PENDING]
        self.error: str | None = None
        self.hard = False
        self.charge_mode = charge_mode
        """``on_demand`` (metered) or ``prepaid`` (covered by a subscription)."""
        self.max_vcpus = max_vcpus
        self.max_memory_mb = max_memory_mb
        self.gpu_count = gpu_count
        """Passthrough devices it holds on its host (which ones: the host's claim)."""

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "project_id": self.project_id,
            "name": self.name,
            "region_id": self.region_id,
            "flavor_id": self.flavor_id,
            "image_id": self.image_id,
            "vcpus": self.vcpus,
            "memory_mb": self.memory_mb,
            "disk_gb": self.disk_gb,
            "preemptible": self.preemptible,
            "server_group_id": self.server_group_id,
            "status": self.status,
            "host_id": self.host_id,
            "deadline": self.deadline.isoformat() if self.deadline else None,
            "error": self.error,
            "charge_mode": self.charge_mode,
            "migration": self.migration,
            "max_vcpus": self.max_vcpus,
            "max_memory_mb": self.max_memory_mb,
            "gpu_count": self.gpu_count,
        }

    # -- placement and build ---------------------------------------------------------

    def schedule(self, host_id: str, step_id: str, decision: dict[str, Any]) -> None:
        """Placed on ``host_id``; ``decision`` is the scheduler's record: inputs, scores, choice."""
        self._require(PENDING)
        self._scheduled(host_id, step_id, clock.now() + DEADLINES[BUILDING], decision)

    @event("Scheduled")
    def _scheduled(
        self, host_id: str, step_id: str, deadline: datetime, decision: dict[str, Any]
    ) -> None:
        self.host_id = host_id
        self.step_id = step_id
        self.status = BUILDING
        self.deadline = deadline

    def fail_placement(self, reason: str) -> None:
        self._require(PENDING)
        self._failed(reason)

    # -- outcomes from the host ------------------------------------------------------

    def host_reported(self, step_id: str, state: str, error: str | None) -> bool:
        """Apply a host's outcome for ``step_id``; False when it is stale (ignored)."""
        if step_id != self.step_id or self.status not in TRANSITIONAL:
            return False
        if self.status == RESETTING_PASSWORD:
            assert self.password is not None
            if error is None:
                self._password_reset(self.password["user"])
            else:
                self._password_reset_failed(self.password["user"], error)
        elif self.status == RESIZING:
            if error is None:
                self._reached(state)
            else:  # the guest would not take it live: stopped, and started at the new size
                self._hot_resize_refused(
                    error, f"{step_id}.cold", clock.now() + DEADLINES[STOPPING]
                )
        elif error is not None:
            self._failed(error)
        elif self.status == STOPPING and self.restart:
            self._stepped(STARTING, f"{step_id}.start", clock.now() + DEADLINES[STARTING])
        elif self.status == DELETING:
            self._recycled()
        elif self.status == REINSTALLING:
            self._reinstalled(self.image_id, self.resume or state)
        else:
            self._reached(state)
        return True

    @event("Reached")
    def _reached(self, state: str) -> None:
        self.status = state
        self.deadline = None
        self.step_id = None
        self.unsettled = None

    @event("Failed")
    def _failed(self, reason: str) -> None:
        self.status = ERROR
        self.error = reason
        self.deadline = None
        self.step_id = None
        self.restart = False

    def time_out(self, now: datetime) -> bool:
        """Declare the current step timed out if its deadline passed; True if it did."""
        if self.status not in TRANSITIONAL or self.deadline is None or now < self.deadline:
            return False
        cause = f"{self.status} did not finish by {self.deadline.isoformat()}"
        if self.status == MIGRATING:
            # Where the guest is cannot be known without its host: error, on the source.
            self.fail_migration(self.step_id or "", cause, ERROR)
        elif self.status == RESETTING_PASSWORD:
            assert self.password is not None
            self._password_reset_failed(self.password["user"], cause)
        else:
            self._timed_out(self.status, self.deadline)
        return True

    @event("TimedOut")
    def _timed_out(self, step: str, deadline: datetime) -> None:
        self.status = ERROR
        self.error = f"{step} did not finish by {deadline.isoformat()}"
        self.deadline = None
        self.step_id = None
        self.restart = False

    # -- power -----------------------------------------------------------------------

    def start(self, step_id: str) -> None:
        self._require(STOPPED, ERROR)
        self._require_host()
        self._stepped(STARTING, step_id, clock.now() + DEADLINES[STARTING])

    def stop(self, step_id: str) -> None:
        self._require(RUNNING, ERROR)
        self._require_host()
        self._stepped(STOPPING, step_id, clock.now() + DEADLINES[STOPPING])

    def reboot(self, step_id: str, *, hard: bool = False) -> None:
        self._require(RUNNING)
        self._stepped(REBOOTING, step_id, clock.now() + DEADLINES[REBOOTING], hard)

    def delete(self, step_id: str) -> None:
        """To the recycle bin: the guest is stopped, the instance can be restored."""
        self._require(RUNNING, STOPPED, ERROR)
        if self.host_id is None:
            self._recycled()
            return
        self._stepped(DELETING, step_id, clock.now() + DEADLINES[DELETING])

    @event("StepStarted")
    def _stepped(self, status: str, step_id: str, deadline: datetime, hard: bool = False) -> None:
        self.hard = hard
        """For a reboot: reset rather than ask the guest."""
        self.status = status
        self.step_id = step_id
        self.deadline = deadline
        self.error = None
        self.restart = False
        self.unsettled = None

    @event("Recycled")
    def _recycled(self) -> None:
        self.status = RECYCLED
        self.deadline = None
        self.step_id = None

    def restore(self) -> None:
        self._require(RECYCLED)
        self._restored()

    @event("Restored")
    def _restored(self) -> None:
        self.status = STOPPED

    def purge(self) -> None:
        self._require(RECYCLED, ERROR)
        self._purged()

    @event("Purged")
    def _purged(self) -> None:
        # host_id stays: it is where the guest's remains are removed.
        self.status = PURGED
        self.unsettled = None

    # -- host failure ----------------------------------------------------------------

    def evacuate(self, host_id: str, step_id: str, decision: dict[str, Any], reason: str) -> None:
        """Its host is lost (or drained): rebuilt from its image on ``host_id``.

        A guest that was meant to run is built there and started; a stopped one only moves
        (its next start builds it).
        """
        self._require(*EVACUABLE)
        meant_stopped = (self.status == REINSTALLING and self.resume == STOPPED) or (
            self.status == MIGRATING and (self.migration or {}).get("resume") == STOPPED
        )
        if self.status in (STOPPED, STOPPING) or meant_stopped:
            self._evacuated(self.host_id, host_id, None, None, STOPPED, decision, reason)
            return
        deadline = clock.now() + DEADLINES[BUILDING]
        self._evacuated(self.host_id, host_id, step_id, deadline, BUILDING, decision, reason)

    @event("Evacuated")
    def _evacuated(
        self,
        from_host_id: str | None,
        host_id: str,
        step_id: str | None,
        deadline: datetime | None,
        status: str,
        decision: dict[str, Any],
        reason: str,
    ) -> None:
        self.host_id = host_id
        self.step_id = step_id
        self.deadline = deadline
        self.status = status
        self.error = None
        self.password = None
        self.console = None
        self.migration = None
        self.restart = False
        self.unsettled = None

    def deleted_with_host(self) -> None:
        """Its host is lost while it was being deleted: the guest went with it."""
        self._require(DELETING)
        self._recycled()

    # -- preemption ------------------------------------------------------------------

    def preempt(self, preemption_id: str, reason: str, step_id: str) -> None:
        """Its room on its host goes to a regular instance: the guest stops, and the claim
        is released by the caller. A stopped (or recycled) one stays as it is; its next
        start claims its host again, if there is room by then.
        """
        if not self.preemptible:
            raise InvalidState("only a preemptible instance is preempted", instance_id=self.id)
        self._require(*PREEMPTABLE)
        self._require_host()
        self._preempted(self.host_id, preemption_id, reason)
        if self.status not in (STOPPED, RECYCLED):
            self._stepped(STOPPING, step_id, clock.now() + DEADLINES[STOPPING])

    @event("Preempted")
    def _preempted(self, host_id: str | None, preemption_id: str, reason: str) -> None:
        self.preempted = {"host_id": host_id, "preemption_id": preemption_id, "reason": reason}

    # -- size ------------------------------------------------------------------------

    def resize(
        self, flavor_id: str, vcpus: int, memory_mb: int, *, step_id: str, maxima: Ceiling
    ) -> str:
        """Take another size: ``cold`` (stopped: its next start runs it at the new size),
        ``hot`` (running, and it fits in the room its guest was defined with: given vCPUs
        and memory live), or ``restart`` (running: stopped, and started at the new size).

        The new size is the instance's at once (its claim, quota and bill follow it);
        the steps make the guest match. ``maxima`` is the room a guest defined at the new
        size gets (hot-plug policy), recorded for its next definition.
        """
        self._require(STOPPED, RUNNING)
        if (flavor_id, vcpus, memory_mb) == (self.flavor_id, self.vcpus, self.memory_mb):
            raise InvalidState("the instance already has this size", instance_id=self.id)
        if self.status == STOPPED:
            self._resized(flavor_id, vcpus, memory_mb, maxima.vcpus, maxima.memory_mb)
            return "cold"
        self._require_host()
        room = None
        if self.max_vcpus is not None and self.max_memory_mb is not None:
            room = Ceiling(self.max_vcpus, self.max_memory_mb)
        if fits_live((self.vcpus, self.memory_mb), (vcpus, memory_mb), room):
            assert room is not None  # the running guest keeps the room it was defined with
            deadline = clock.now() + DEADLINES[RESIZING]
            self._resize_started(flavor_id, vcpus, memory_mb, True, step_id, deadline, *room)
            return "hot"
        deadline = clock.now() + DEADLINES[STOPPING]
        self._resize_started(flavor_id, vcpus, memory_mb, False, step_id, deadline, *maxima)
        return "restart"

    @event("Resized")
    def _resized(
        self,
        flavor_id: str,
        vcpus: int,
        memory_mb: int,
        max_vcpus: int | None = None,
        max_memory_mb: int | None = None,
    ) -> None:
        self.flavor_id = flavor_id
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        if max_vcpus is not None and max_memory_mb is not None:
            self.max_vcpus, self.max_memory_mb = max_vcpus, max_memory_mb

    @event("ResizeStarted")
    def _resize_started(
        self,
        flavor_id: str,
        vcpus: int,
        memory_mb: int,
        hot: bool,
        step_id: str,
        deadline: datetime,
        max_vcpus: int,
        max_memory_mb: int,
    ) -> None:
        """Hot: the host plugs vCPUs and memory in (resizing). Otherwise: stopping, then
        started again at the new size."""
        self.flavor_id = flavor_id
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.max_vcpus, self.max_memory_mb = max_vcpus, max_memory_mb
        self.status = RESIZING if hot else STOPPING
        self.restart = not hot
        self.step_id = step_id
        self.deadline = deadline
        self.error = None

    @event("HotResizeRefused")
    def _hot_resize_refused(self, reason: str, step_id: str, deadline: datetime) -> None:
        """The host could not plug it in (``reason``): the guest restarts at its size."""
        self.status = STOPPING
        self.restart = True
        self.step_id = step_id
        self.deadline = deadline

    # -- migration (operator actions) ------------------------------------------------

    def migrate(self, host_id: str, step_id: str, decision: dict[str, Any], *, live: bool) -> None:
        """Move to ``host_id``: live keeps the guest running; cold moves it stopped.

        Two steps under one deadline each: the target prepares the guest's disk (from its
        image, at its size), then the source carries out the move. A cold migration of a
        running guest stops it first and starts it again on the target once it is there.
        """
        if live:
            self._require(RUNNING)
        else:
            self._require(RUNNING, STOPPED)
        self._require_host()
        source = self.host_id
        assert source is not None
        if host_id == source:
            raise InvalidState("the instance already runs on that host", instance_id=self.id)
        deadline = clock.now() + DEADLINES[MIGRATING]
        self._migration_started(source, host_id, live, self.status, step_id, deadline, decision)

    @event("MigrationStarted")
    def _migration_started(
        self,
        from_host_id: str,
        to_host_id: str,
        live: bool,
        resume: str,
        step_id: str,
        deadline: datetime,
        decision: dict[str, Any],
    ) -> None:
        self.migration = {
            "from_host_id": from_host_id,
            "to_host_id": to_host_id,
            "live": live,
            "resume": resume,
            "phase": PREPARING,
        }
        self.status = MIGRATING
        self.step_id = step_id
        self.deadline = deadline
        self.error = None

    def migration_prepared(self, step_id: str, next_step_id: str) -> bool:
        """The target has the disk ready: the source's move is the next step. False when stale."""
        if self.status != MIGRATING or step_id != self.step_id or self.migration is None:
            return False
        if self.migration.get("phase") != PREPARING:
            return False
        self._migration_prepared(next_step_id, clock.now() + DEADLINES[MIGRATING])
        return True

    @event("MigrationPrepared")
    def _migration_prepared(self, step_id: str, deadline: datetime) -> None:
        assert self.migration is not None
        self.migration = {**self.migration, "phase": MOVING}
        self.step_id = step_id
        self.deadline = deadline

    def complete_migration(self, step_id: str) -> bool:
        """The source host moved the guest: it is on the target now. False when stale."""
        if self.status != MIGRATING or step_id != self.step_id or self.migration is None:
            return False
        move = self.migration
        if move.get("phase", MOVING) != MOVING:
            return False
        status = RUNNING if move["live"] else STOPPED
        self._migrated(move["from_host_id"], move["to_host_id"], move["live"], status)
        return True

    @event("Migrated")
    def _migrated(self, from_host_id: str, to_host_id: str, live: bool, status: str) -> None:
        self.host_id = to_host_id
        self.status = status
        self.migration = None
        self.step_id = None
        self.deadline = None
        self.console = None

    def fail_migration(self, step_id: str, reason: str, status: str) -> bool:
        """The move did not happen: the instance stays on its source host, in ``status``.

        ``status`` is what the source observed (running, stopped) or error when unknown.
        False when the report is stale.
        """
        if self.status != MIGRATING or step_id != self.step_id or self.migration is None:
            return False
        move = self.migration
        self._migration_failed(
            move["from_host_id"], move["to_host_id"], move["live"], reason, status
        )
        return True

    @event("MigrationFailed")
    def _migration_failed(
        self, from_host_id: str, to_host_id: str, live: bool, reason: str, status: str
    ) -> None:
        self.status = status
        self.error = reason
        self.migration = None
        self.step_id = None
        self.deadline = None
        if status == ERROR:
            self.unsettled = {"from_host_id": from_host_id, "to_host_id": to_host_id}

    def settles_on(self, host_id: str, observed: str) -> bool:
        """Whether ``host_id`` reporting the guest ``observed`` tells where a migration that
        ended unseen left it: one of its two hosts, found running or stopped there."""
        move = self.unsettled
        return (
            self.status == ERROR
            and move is not None
            and host_id in (move["from_host_id"], move["to_host_id"])
            and observed in (RUNNING, STOPPED)
        )

    def settle_migration(self, host_id: str, observed: str) -> bool:
        """The guest is found on ``host_id``: the instance is there, as found. False (nothing
        recorded) when the report does not settle it; see ``settles_on``."""
        if not self.settles_on(host_id, observed):
            return False
        move = self.unsettled
        assert move is not None
        self._migration_settled(move["from_host_id"], move["to_host_id"], host_id, observed)
        return True

    @event("MigrationSettled")
    def _migration_settled(
        self, from_host_id: str, to_host_id: str, host_id: str, status: str
    ) -> None:
        """The host it was not found on is told to remove what it holds of it."""
        self.host_id = host_id
        self.status = status
        self.error = None
        self.unsettled = None

    # -- system disk and guest credentials --------------------------------------------

    def reinstall(self, image_id: str, step_id: str) -> None:
        """Rebuild the root disk from ``image_id``; the instance ends as it was (running
        or stopped). What the old disk held is lost."""
        self._require(RUNNING, STOPPED)
        self._require_host()
        deadline = clock.now() + DEADLINES[REINSTALLING]
        self._reinstall_started(image_id, self.image_id, self.status, step_id, deadline)

    @event("ReinstallStarted")
    def _reinstall_started(
        self,
        image_id: str,
        previous_image_id: str,
        resume: str,
        step_id: str,
        deadline: datetime,
    ) -> None:
        self.image_id = image_id
        self.resume = resume
        self.status = REINSTALLING
        self.step_id = step_id
        self.deadline = deadline
        self.error = None

    @event("Reinstalled")
    def _reinstalled(self, image_id: str, status: str) -> None:
        self.status = status
        self.resume = None
        self.step_id = None
        self.deadline = None

    def reset_password(self, user: str, password_hash: str, step_id: str) -> None:
        """Set ``user``'s password in the running guest from its crypt(3) hash."""
        self._require(RUNNING)
        self._require_host()
        if not password_hash.startswith("$6$"):
            raise ValueError("a password reaches an instance only as a SHA-512 crypt hash")
        deadline = clock.now() + DEADLINES[RESETTING_PASSWORD]
        self._password_reset_started(user, password_hash, step_id, deadline)

    @event("PasswordResetStarted")
    def _password_reset_started(
        self, user: str, password_hash: str, step_id: str, deadline: datetime
    ) -> None:
        self.password = {"user": user, "hash": password_hash}
        self.status = RESETTING_PASSWORD
        self.step_id = step_id
        self.deadline = deadline
        self.error = None

    @event("PasswordReset")
    def _password_reset(self, user: str) -> None:
        self.password = None
        self.status = RUNNING
        self.step_id = None
        self.deadline = None

    @event("PasswordResetFailed")
    def _password_reset_failed(self, user: str, reason: str) -> None:
        """The guest keeps running with its old password."""
        self.password = None
        self.status = RUNNING
        self.error = reason
        self.step_id = None
        self.deadline = None

    # -- console ---------------------------------------------------------------------

    def report_console(self, host_id: str, listen: str, port: int) -> None:
        """Its host says where the running guest's VNC display listens."""
        console = {"host_id": host_id, "listen": listen, "port": port}
        if console != self.console:
            self._console_reported(host_id, listen, port)

    @event("ConsoleReported")
    def _console_reported(self, host_id: str, listen: str, port: int) -> None:
        self.console = {"host_id": host_id, "listen": listen, "port": port}

    def vnc(self) -> dict[str, Any]:
        """Where to reach its console now: only while it runs, on the host that reported it."""
        console = self.console
        if self.status != RUNNING or console is None or console["host_id"] != self.host_id:
            raise ConsoleUnavailable(
                f"instance is {self.status}; no console reported by its host yet"
                if self.status == RUNNING
                else f"instance is {self.status}; a console needs it running",
                instance_id=self.id,
            )
        return console

    # -- drift: what its host reports against what should be there --------------------

    drift: dict[str, Any] | None = None
    """The last drift found (host_id, observed, expected, action, step_id, until): a heal
    sent by itself (no step of the instance) is not sent again for the same host before
    ``until``."""

    @staticmethod
    def expected_on(status: str, placed_on: str | None, host_id: str) -> str | None:
        """What should be on ``host_id`` of an instance in ``status`` placed on ``placed_on``:
        running, stopped or absent; None while a step's outcome is pending, or in error
        (where its guest is may be unknown: an operator or a retry decides)."""
        if status in TRANSITIONAL or status == ERROR:
            return None
        if placed_on != host_id or status == PURGED:
            return "absent"
        return RUNNING if status == RUNNING else STOPPED  # stopped, recycled

    @staticmethod
    def heal_for(expected: str | None, observed: str) -> str | None:
        """The host action that makes ``observed`` what is ``expected``; None if it holds.

        A guest meant to stop that is found crashed, or found missing, is left be (its
        next start defines it again from its spec).
        """
        if expected is None or observed == expected:
            return None
        if expected == RUNNING:
            return "rebuild" if observed == "absent" else "ensure_running"
        if expected == STOPPED:
            return "ensure_stopped" if observed in (RUNNING, "paused") else None
        return None if observed == "absent" else "ensure_absent"

    def drift_heal(self, host_id: str, observed: str) -> str | None:
        """The action that heals what ``host_id`` observed; None when nothing differs or a
        heal sent for it alone is still in flight."""
        action = self.heal_for(self.expected_on(self.status, self.host_id, host_id), observed)
        if action is None or self._heals_by_step(action):
            return action
        return None if self._in_flight(host_id, action) else action

    def _in_flight(self, host_id: str, action: str) -> bool:
        """A heal sent to ``host_id`` by its event alone, its deadline not passed yet."""
        drift = self.drift
        if drift is None or (drift["host_id"], drift["action"]) != (host_id, action):
            return False
        return clock.now() < datetime.fromisoformat(drift["until"])

    def _heals_by_step(self, action: str) -> bool:
        return action in ("rebuild", "ensure_running") or (
            action == "ensure_stopped" and self.status == STOPPED
        )

    def detect_drift(self, host_id: str, observed: str, step_id: str) -> str | None:
        """``host_id`` reports the guest ``observed``: record the difference and heal it.

        Running but found stopped (or missing): started again (rebuilt), through starting
        (building) like any start, so its status says what runs. Stopped but found running:
        stopped through stopping. Found where it should not be (elsewhere, purged), or
        running while in the recycle bin: the host is told to remove (stop) it, by this
        event alone, not again for that host before the step deadline. The action, or None.
        """
        action = self.drift_heal(host_id, observed)
        if action is None:
            return None
        expected = self.expected_on(self.status, self.host_id, host_id)
        assert expected is not None
        now = clock.now()
        step = self._heals_by_step(action)
        until = now + DEADLINES[STOPPING]
        self._drift_detected(host_id, observed, expected, action, step_id, step, until)
        if action == "rebuild":
            self._stepped(BUILDING, step_id, now + DEADLINES[BUILDING])
        elif action == "ensure_running":
            self._stepped(STARTING, step_id, now + DEADLINES[STARTING])
        elif step:
            self._stepped(STOPPING, step_id, now + DEADLINES[STOPPING])
        return action

    def stop_unclaimed(self, host_id: str, step_id: str) -> str | None:
        """In error with its host's claim let go (its build failed or timed out), yet
        ``host_id``, its host, reports its guest running: the build's outcome came after
        the platform gave up. Nothing pays for that guest and nothing holds room for it, so
        it is stopped there by this event alone; the status stays error, and a start claims
        again. The caller checks the claim. The action, or None (not again for that host
        before the step deadline)."""
        if self.status != ERROR or self.host_id != host_id or self.unsettled is not None:
            return None
        action = "ensure_stopped"
        if self._in_flight(host_id, action):
            return None
        until = clock.now() + DEADLINES[STOPPING]
        self._drift_detected(host_id, RUNNING, STOPPED, action, step_id, False, until)
        return action

    @event("DriftDetected")
    def _drift_detected(
        self,
        host_id: str,
        observed: str,
        expected: str,
        action: str,
        step_id: str,
        step: bool,
        until: datetime,
    ) -> None:
        """``step``: a step of the instance heals it (sent as steps are); otherwise the
        dispatcher sends ``action`` to ``host_id`` under ``step_id`` for this event."""
        self.drift = {
            "host_id": host_id,
            "observed": observed,
            "expected": expected,
            "action": action,
            "step_id": step_id,
            "until": until.isoformat(),
        }

    # -- rules -----------------------------------------------------------------------

    def _require(self, *states: str) -> None:
        if self.status not in states:
            raise InvalidState(
                f"instance is {self.status}; this needs {' or '.join(states)}",
                instance_id=self.id,
                status=self.status,
            )

    def _require_host(self) -> None:
        if self.host_id is None:
            raise InvalidState("the instance was never placed on a host", instance_id=self.id)
