"""A cluster: hosts of one CPU architecture and one kind (compute or storage) in a region."""

from __future__ import annotations

import math
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState, ValidationFailed
from domain.inventory.name_claim import check_name
from domain.inventory.region import Region

ARCHITECTURES = ("x86_64", "aarch64")
CLUSTER_KINDS = ("compute", "storage")
MAX_OVERCOMMIT = 16.0


def check_architecture(architecture: str) -> str:
    if architecture not in ARCHITECTURES:
        raise ValidationFailed(
            f"architecture must be one of {list(ARCHITECTURES)}", field="architecture"
        )
    return architecture


def check_overcommit(ratio: float, field: str) -> float:
    """A ratio of sold to physical capacity: from 1.0 (none) up to 16."""
    if not (math.isfinite(ratio) and 1.0 <= ratio <= MAX_OVERCOMMIT):
        raise ValidationFailed(f"{field} runs from 1.0 to {MAX_OVERCOMMIT}", field=field)
    return float(ratio)


class Cluster(Aggregate):
    id_prefix = "cls"

    def __init__(
        self,
        region_id: str,
        name: str,
        architecture: str,
        kind: str,
        cpu_overcommit: float,
        memory_overcommit: float,
        enabled: bool,
    ) -> None:
        self.region_id = region_id
        self.name = name
        self.architecture = architecture
        self.kind = kind
        self.cpu_overcommit = cpu_overcommit
        self.memory_overcommit = memory_overcommit
        self.enabled = enabled

    @classmethod
    def form(
        cls,
        region: Region,
        name: str,
        architecture: str,
        kind: str,
        cpu_overcommit: float = 4.0,
        memory_overcommit: float = 1.0,
        enabled: bool = True,
    ) -> Cluster:
        """A new cluster in ``region``, which must be enabled."""
        if not region.enabled:
            raise InvalidState(f"region {region.name} is disabled", region_id=region.id)
        if kind not in CLUSTER_KINDS:
            raise ValidationFailed(f"kind must be one of {list(CLUSTER_KINDS)}", field="kind")
        return cls(
            region_id=region.id,
            name=check_name(name),
            architecture=check_architecture(architecture),
            kind=kind,
            cpu_overcommit=check_overcommit(cpu_overcommit, "cpu_overcommit"),
            memory_overcommit=check_overcommit(memory_overcommit, "memory_overcommit"),
            enabled=enabled,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "region_id": self.region_id,
            "name": self.name,
            "architecture": self.architecture,
            "kind": self.kind,
            "cpu_overcommit": self.cpu_overcommit,
            "memory_overcommit": self.memory_overcommit,
            "status": "enabled" if self.enabled else "disabled",
        }

    def rename(self, name: str) -> None:
        if check_name(name) != self.name:
            self._renamed(name)

    @event("Renamed")
    def _renamed(self, name: str) -> None:
        self.name = name

    def set_overcommit(self, cpu: float | None, memory: float | None) -> None:
        cpu = self.cpu_overcommit if cpu is None else check_overcommit(cpu, "cpu_overcommit")
        memory = (
            self.memory_overcommit
            if memory is None
            else check_overcommit(memory, "memory_overcommit")
        )
        if (cpu, memory) != (self.cpu_overcommit, self.memory_overcommit):
            self._overcommit_changed(cpu, memory)

    @event("OvercommitChanged")
    def _overcommit_changed(self, cpu_overcommit: float, memory_overcommit: float) -> None:
        self.cpu_overcommit = cpu_overcommit
        self.memory_overcommit = memory_overcommit

    def enable(self) -> None:
        if self.enabled:
            raise InvalidState(f"cluster {self.name} is already enabled", cluster_id=self.id)
        self._enabled()

    @event("Enabled")
    def _enabled(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        if not self.enabled:
            raise InvalidState(f"cluster {self.name} is already disabled", cluster_id=self.id)
        self._disabled()

    @event("Disabled")
    def _disabled(self) -> None:
        self.enabled = False
