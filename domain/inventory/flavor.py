"""A flavor: the size of instance tenants can order (vCPUs, memory, disk range, GPUs)."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState, ValidationFailed
from domain.inventory.cluster import check_architecture
from domain.inventory.name_claim import check_name

LIMITS = {
    "vcpus": (1, 512),
    "memory_mb": (128, 4 * 1024 * 1024),
    "min_disk_gb": (1, 65536),
    "max_disk_gb": (1, 65536),
    "gpu_count": (0, 16),
}


def _in_range(field: str, value: int) -> int:
    low, high = LIMITS[field]
    if not low <= value <= high:
        raise ValidationFailed(f"{field} runs from {low} to {high}", field=field)
    return value


class Flavor(Aggregate):
    """What an instance is sold as; its size never changes once instances may use it."""

    id_prefix = "flv"

    def __init__(
        self,
        name: str,
        vcpus: int,
        memory_mb: int,
        min_disk_gb: int,
        max_disk_gb: int,
        gpu_count: int,
        gpu_model: str | None,
        architecture: str,
        public: bool,
        enabled: bool,
    ) -> None:
        self.name = name
        self.vcpus = vcpus
        self.memory_mb = memory_mb
        self.min_disk_gb = min_disk_gb
        self.max_disk_gb = max_disk_gb
        self.gpu_count = gpu_count
        self.gpu_model = gpu_model
        self.architecture = architecture
        self.public = public
        self.enabled = enabled

    @classmethod
    def define(
        cls,
        name: str,
        vcpus: int,
        memory_mb: int,
        min_disk_gb: int,
        max_disk_gb: int,
        architecture: str,
        gpu_count: int = 0,
        gpu_model: str | None = None,
        public: bool = True,
        enabled: bool = True,
    ) -> Flavor:
        if min_disk_gb > max_disk_gb:
            raise ValidationFailed("min_disk_gb exceeds max_disk_gb", field="disk")
        if gpu_model is not None and (
            gpu_count == 0 or not 0 < len(gpu_model) <= 100 or not gpu_model.isprintable()
        ):
            raise ValidationFailed(
                "a GPU model is 1-100 printable characters, for a flavor with GPUs",
                field="gpus",
            )
        return cls(
            name=check_name(name),
            vcpus=_in_range("vcpus", vcpus),
            memory_mb=_in_range("memory_mb", memory_mb),
            min_disk_gb=_in_range("min_disk_gb", min_disk_gb),
            max_disk_gb=_in_range("max_disk_gb", max_disk_gb),
            gpu_count=_in_range("gpu_count", gpu_count),
            gpu_model=gpu_model,
            architecture=check_architecture(architecture),
            public=public,
            enabled=enabled,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "name": self.name,
            "vcpus": self.vcpus,
            "memory_mb": self.memory_mb,
            "disk": {"min_gb": self.min_disk_gb, "max_gb": self.max_disk_gb},
            "gpus": {"count": self.gpu_count, "model": self.gpu_model},
            "architecture": self.architecture,
            "visibility": "public" if self.public else "private",
            "status": "enabled" if self.enabled else "disabled",
        }

    def rename(self, name: str) -> None:
        if check_name(name) != self.name:
            self._renamed(name)

    @event("Renamed")
    def _renamed(self, name: str) -> None:
        self.name = name

    def set_public(self, public: bool) -> None:
        """Offer the flavor to every tenant, or withdraw it from their lists."""
        if public and not self.public:
            self._published()
        elif not public and self.public:
            self._withdrawn()

    @event("Published")
    def _published(self) -> None:
        self.public = True

    @event("Withdrawn")
    def _withdrawn(self) -> None:
        self.public = False

    def enable(self) -> None:
        if self.enabled:
            raise InvalidState(f"flavor {self.name} is already enabled", flavor_id=self.id)
        self._enabled()

    @event("Enabled")
    def _enabled(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        if not self.enabled:
            raise InvalidState(f"flavor {self.name} is already disabled", flavor_id=self.id)
        self._disabled()

    @event("Disabled")
    def _disabled(self) -> None:
        self.enabled = False
