"""An instance: a virtual machine's whole life, as a state machine with deadlines.

Every transitional state (building, starting, stopping, rebooting, deleting) has a
deadline. The host's outcome ends it; if none comes in time, ``time_out`` ends it with
the cause, and what the step held (its host claim) is released by the saga.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.errors import InvalidState

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

TRANSITIONAL = frozenset({PENDING, BUILDING, STOPPING, STARTING, REBOOTING, DELETING})
DEADLINES = {
    PENDING: timedelta(seconds=30),
    BUILDING: timedelta(seconds=180),
    STARTING: timedelta(seconds=120),
    STOPPING: timedelta(seconds=120),
    REBOOTING: timedelta(seconds=120),
    DELETING: timedelta(seconds=120),
}
"""How long each step may take before it is declared timed out."""
EVACUABLE = frozenset({RUNNING, BUILDING, STARTING, REBOOTING, STOPPING, STOPPED})
"""States an instance on a lost (or drained) host is moved from."""


class Instance(Aggregate):
    id_prefix = "i"

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
        if error is not None:
            self._failed(error)
        elif self.status == DELETING:
            self._recycled()
        else:
            self._reached(state)
        return True

    @event("Reached")
    def _reached(self, state: str) -> None:
        self.status = state
        self.deadline = None
        self.step_id = None

    @event("Failed")
    def _failed(self, reason: str) -> None:
        self.status = ERROR
        self.error = reason
        self.deadline = None
        self.step_id = None

    def time_out(self, now: datetime) -> bool:
        """Declare the current step timed out if its deadline passed; True if it did."""
        if self.status not in TRANSITIONAL or self.deadline is None or now < self.deadline:
            return False
        self._timed_out(self.status, self.deadline)
        return True

    @event("TimedOut")
    def _timed_out(self, step: str, deadline: datetime) -> None:
        self.status = ERROR
        self.error = f"{step} did not finish by {deadline.isoformat()}"
        self.deadline = None
        self.step_id = None

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

    # -- host failure ----------------------------------------------------------------

    def evacuate(self, host_id: str, step_id: str, decision: dict[str, Any], reason: str) -> None:
        """Its host is lost (or drained): rebuilt from its image on ``host_id``.

        A guest that was meant to run is built there and started; a stopped one only moves
        (its next start builds it).
        """
        self._require(*EVACUABLE)
        if self.status in (STOPPED, STOPPING):
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

    def deleted_with_host(self) -> None:
        """Its host is lost while it was being deleted: the guest went with it."""
        self._require(DELETING)
        self._recycled()

    # -- size ------------------------------------------------------------------------

    def resize(self, flavor_id: str, vcpus: int, memory_mb: int) -> None:
        """A cold resize: the next start runs the guest at the new size."""
        self._require(STOPPED)
        if (flavor_id, vcpus, memory_mb) == (self.flavor_id, self.vcpus, self.memory_mb):
            raise InvalidState("the instance already has this size", instance_id=self.id)
        self._resized(flavor_id, vcpus, memory_mb)

    @event("Resized")
    def _resized(self, flavor_id: str, vcpus: int, memory_mb: int) -> None:
        self.flavor_id = flavor_id
        self.vcpus = vcpus
        self.memory_mb = memory_mb

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
