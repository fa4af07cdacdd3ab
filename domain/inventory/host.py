"""A host: one hypervisor or storage server, registered in a cluster with its capacity."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import Conflict, InvalidState, ValidationFailed
from domain.inventory.cluster import Cluster

ENABLED, DISABLED, MAINTENANCE = "enabled", "disabled", "maintenance"
HOST_STATUSES = (ENABLED, DISABLED, MAINTENANCE)


class CapacityExhausted(Conflict):
    """The host no longer has room: the scheduler's view was stale; place again."""

    code = "capacity_exhausted"


_LABEL = r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?"
HOSTNAME_PATTERN = rf"^{_LABEL}(\.{_LABEL})*$"
"""A lower-case DNS name (of at most 253 characters, checked apart)."""
PCI_ADDRESS_PATTERN = r"^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$"
"""domain:bus:device.function, as ``lspci -D`` prints it (``0000:3b:00.0``)."""
LABEL_KEY_PATTERN = r"^[a-z0-9]([a-z0-9._/-]{0,61}[a-z0-9])?$"
MAX_LABELS = 64
MAX_GPUS = 16
CAPACITY_RANGES = {
    "vcpus": (1, 4096),
    "memory_mb": (512, 64 * 1024 * 1024),
    "disk_gb": (0, 10**7),
}

_HOSTNAME = re.compile(HOSTNAME_PATTERN)
_PCI_ADDRESS = re.compile(PCI_ADDRESS_PATTERN)
_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)


def check_hostname(hostname: str) -> str:
    if len(hostname) > 253 or not _HOSTNAME.fullmatch(hostname):
        raise ValidationFailed(f"{hostname!r} is not a lower-case DNS name", field="hostname")
    return hostname


def check_capacity(capacity: Mapping[str, int]) -> dict[str, int]:
    if set(capacity) != set(CAPACITY_RANGES):
        raise ValidationFailed(f"capacity needs {sorted(CAPACITY_RANGES)}", field="capacity")
    for key, (low, high) in CAPACITY_RANGES.items():
        if not low <= capacity[key] <= high:
            raise ValidationFailed(f"capacity.{key} runs from {low} to {high}", field="capacity")
    return {key: capacity[key] for key in CAPACITY_RANGES}


def check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise ValidationFailed(f"at most {MAX_LABELS} labels", field="labels")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key):
            raise ValidationFailed(f"label key {key!r} is malformed", field="labels")
        if len(value) > 63 or not value.isprintable():
            raise ValidationFailed(f"label {key}: up to 63 printable characters", field="labels")
    return dict(sorted(labels.items()))


def check_gpus(gpus: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    if len(gpus) > MAX_GPUS:
        raise ValidationFailed(f"at most {MAX_GPUS} GPUs per host", field="gpus")
    checked: list[dict[str, str]] = []
    for gpu in gpus:
        address, model = gpu["address"].lower(), gpu["model"]
        if not _PCI_ADDRESS.fullmatch(address):
            raise ValidationFailed(
                f"{address!r} is not a PCI address like 0000:3b:00.0", field="gpus"
            )
        if not 0 < len(model) <= 100 or not model.isprintable():
            raise ValidationFailed("a GPU model is 1-100 printable characters", field="gpus")
        checked.append({"address": address, "model": model})
    addresses = [gpu["address"] for gpu in checked]
    if len(set(addresses)) != len(addresses):
        raise ValidationFailed("a PCI address appears twice", field="gpus")
    return sorted(checked, key=lambda gpu: gpu["address"])


class Host(Aggregate):
    id_prefix = "hst"

    down = False
    """Its heartbeat deadline passed: the platform's finding, apart from the admin status."""

    def __init__(
        self,
        cluster_id: str,
        region_id: str,
        hostname: str,
        capacity: dict[str, int],
        labels: dict[str, str],
        gpus: list[dict[str, str]],
        status: str,
    ) -> None:
        self.cluster_id = cluster_id
        self.region_id = region_id
        self.hostname = hostname
        self.capacity = dict(capacity)
        self.labels = dict(labels)
        self.gpus = [dict(gpu) for gpu in gpus]
        self.status = status
        self.claims: dict[str, dict[str, Any]] = {}
        """instance id → what it holds here (vcpus, memory_mb, disk_gb, gpus, tenant…)."""

    @classmethod
    def register(
        cls,
        cluster: Cluster,
        hostname: str,
        capacity: Mapping[str, int],
        labels: Mapping[str, str] | None = None,
        gpus: Sequence[Mapping[str, str]] = (),
        enabled: bool = True,
    ) -> Host:
        """A host joins ``cluster`` (and so its region) with the capacity it reports."""
        return cls(
            cluster_id=cluster.id,
            region_id=cluster.region_id,
            hostname=check_hostname(hostname),
            capacity=check_capacity(capacity),
            labels=check_labels(labels or {}),
            gpus=check_gpus(gpus),
            status=ENABLED if enabled else DISABLED,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "cluster_id": self.cluster_id,
            "region_id": self.region_id,
            "hostname": self.hostname,
            "name": self.hostname,
            "capacity": self.capacity,
            "labels": self.labels,
            "gpus": self.gpus,
            "status": self.status,
            "down": self.down,
            "used": self.used(),
            "instances": len(self.claims),
        }

    def change_capacity(self, changes: Mapping[str, int]) -> None:
        """Record new hardware figures (a DIMM added, a disk replaced)."""
        capacity = check_capacity({**self.capacity, **changes})
        if capacity != self.capacity:
            self._capacity_changed(capacity)

    @event("CapacityChanged")
    def _capacity_changed(self, capacity: dict[str, int]) -> None:
        self.capacity = capacity

    def relabel(self, changes: Mapping[str, str | None]) -> None:
        """Set labels; a None value removes that label."""
        labels = {k: v for k, v in {**self.labels, **changes}.items() if v is not None}
        labels = check_labels(labels)
        if labels != self.labels:
            self._relabelled(labels)

    @event("Relabelled")
    def _relabelled(self, labels: dict[str, str]) -> None:
        self.labels = labels

    def change_gpus(self, gpus: Sequence[Mapping[str, str]]) -> None:
        checked = check_gpus(gpus)
        if checked != self.gpus:
            self._gpus_changed(checked)

    @event("GpusChanged")
    def _gpus_changed(self, gpus: list[dict[str, str]]) -> None:
        self.gpus = gpus

    def _require_not(self, status: str) -> None:
        if self.status == status:
            raise InvalidState(f"host {self.hostname} is already {status}", host_id=self.id)

    def enable(self) -> None:
        self._require_not(ENABLED)
        self._enabled()

    @event("Enabled")
    def _enabled(self) -> None:
        self.status = ENABLED

    def disable(self) -> None:
        self._require_not(DISABLED)
        self._disabled()

    @event("Disabled")
    def _disabled(self) -> None:
        self.status = DISABLED

    def enter_maintenance(self) -> None:
        self._require_not(MAINTENANCE)
        self._entered_maintenance()

    @event("EnteredMaintenance")
    def _entered_maintenance(self) -> None:
        self.status = MAINTENANCE

    # -- health: the platform's verdict on the heartbeat ------------------------------

    def mark_down(self, last_seen: datetime | None, reason: str) -> None:
        """No heartbeat in time: nothing is placed here and its instances are evacuated."""
        if self.down:
            raise InvalidState(f"host {self.hostname} is already down", host_id=self.id)
        self._marked_down(last_seen, reason)

    @event("MarkedDown")
    def _marked_down(self, last_seen: datetime | None, reason: str) -> None:
        self.down = True

    def mark_up(self) -> None:
        """Its heartbeat is back: it may take instances again."""
        if not self.down:
            raise InvalidState(f"host {self.hostname} is not down", host_id=self.id)
        self._marked_up()

    @event("MarkedUp")
    def _marked_up(self) -> None:
        self.down = False

    def found_unknown_guest(self, instance_id: str, observed: str, step_id: str) -> None:
        """Its report shows a guest no instance of the platform is: it is removed (the
        dispatcher sends ``ensure_absent`` under ``step_id`` for this event)."""
        self._unknown_guest_found(instance_id, observed, step_id)

    @event("UnknownGuestFound")
    def _unknown_guest_found(self, instance_id: str, observed: str, step_id: str) -> None:
        pass

    # -- capacity claims: the authority the scheduler only advises --------------------

    def used(self) -> dict[str, int]:
        totals = {"vcpus": 0, "memory_mb": 0, "disk_gb": 0}
        for claim in self.claims.values():
            for key in totals:
                totals[key] += claim[key]
        return totals

    def free_gpus(self) -> list[dict[str, str]]:
        taken = {address for claim in self.claims.values() for address in claim["gpus"]}
        return [gpu for gpu in self.gpus if gpu["address"] not in taken]

    def claim(
        self,
        instance_id: str,
        resources: Mapping[str, int],
        gpus: Sequence[str],
        *,
        tenant_id: str,
        preemptible: bool,
        server_group_id: str | None,
        cpu_overcommit: float,
        memory_overcommit: float,
    ) -> None:
        """Hold an instance's resources here, re-checked against this host's own state."""
        if instance_id in self.claims:
            return  # the same instance claiming twice is a repeat, not a second claim
        if self.status != ENABLED:
            raise InvalidState(f"host {self.hostname} is {self.status}", host_id=self.id)
        if self.down:
            raise InvalidState(f"host {self.hostname} is down", host_id=self.id)
        used = self.used()
        limits = {
            "vcpus": int(self.capacity["vcpus"] * cpu_overcommit),
            "memory_mb": int(self.capacity["memory_mb"] * memory_overcommit),
            "disk_gb": self.capacity["disk_gb"],
        }
        for key, limit in limits.items():
            if used[key] + resources[key] > limit:
                raise CapacityExhausted(
                    f"host {self.hostname}: {key} {used[key]} + {resources[key]} > {limit}",
                    host_id=self.id,
                )
        free = {gpu["address"] for gpu in self.free_gpus()}
        if not set(gpus) <= free:
            raise CapacityExhausted(f"host {self.hostname}: GPUs {sorted(gpus)} are not free")
        self._claimed(
            instance_id,
            {
                "vcpus": resources["vcpus"],
                "memory_mb": resources["memory_mb"],
                "disk_gb": resources["disk_gb"],
                "gpus": list(gpus),
                "tenant_id": tenant_id,
                "preemptible": preemptible,
                "server_group_id": server_group_id,
            },
        )

    @event("CapacityClaimed")
    def _claimed(self, instance_id: str, claim: dict[str, Any]) -> None:
        self.claims[instance_id] = claim

    def release(self, instance_id: str, reason: str) -> None:
        if instance_id in self.claims:
            self._released(instance_id, reason)

    @event("CapacityReleased")
    def _released(self, instance_id: str, reason: str) -> None:
        del self.claims[instance_id]
