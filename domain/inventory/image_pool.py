"""An image pool: where a region keeps images and disks (a Ceph RBD pool or a qcow2 directory)."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState, ValidationFailed
from domain.inventory.name_claim import check_name
from domain.inventory.region import Region

RBD, QCOW2 = "rbd", "qcow2"
BACKENDS = (RBD, QCOW2)
RBD_POOL_PATTERN = r"^[A-Za-z0-9_.-]{1,100}$"
_RBD_POOL = re.compile(RBD_POOL_PATTERN)


def check_location(backend: str, location: str) -> str:
    """An RBD pool name, or an absolute, normalised directory path for qcow2 files."""
    if backend == RBD:
        if not _RBD_POOL.fullmatch(location) or location in {".", ".."}:
            raise ValidationFailed(f"{location!r} is not a Ceph pool name", field="location")
        return location
    if backend == QCOW2:
        path = PurePosixPath(location)
        if (
            not path.is_absolute()
            or len(path.parts) < 2
            or ".." in path.parts
            or str(path) != location
            or len(location) > 1024
            or not location.isprintable()
        ):
            raise ValidationFailed(
                f"{location!r} is not an absolute, normalised directory path", field="location"
            )
        return location
    raise ValidationFailed(f"backend must be one of {list(BACKENDS)}", field="backend")


class ImagePool(Aggregate):
    id_prefix = "imp"

    def __init__(
        self, region_id: str, name: str, backend: str, location: str, enabled: bool
    ) -> None:
        self.region_id = region_id
        self.name = name
        self.backend = backend
        self.location = location
        self.enabled = enabled

    @classmethod
    def define(
        cls, region: Region, name: str, backend: str, location: str, enabled: bool = True
    ) -> ImagePool:
        """A new pool in ``region``, which must be enabled."""
        if not region.enabled:
            raise InvalidState(f"region {region.name} is disabled", region_id=region.id)
        return cls(
            region_id=region.id,
            name=check_name(name),
            backend=backend,
            location=check_location(backend, location),
            enabled=enabled,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "region_id": self.region_id,
            "name": self.name,
            "backend": self.backend,
            "location": self.location,
            "status": "enabled" if self.enabled else "disabled",
        }

    def rename(self, name: str) -> None:
        if check_name(name) != self.name:
            self._renamed(name)

    @event("Renamed")
    def _renamed(self, name: str) -> None:
        self.name = name

    def enable(self) -> None:
        if self.enabled:
            raise InvalidState(f"image pool {self.name} is already enabled", image_pool_id=self.id)
        self._enabled()

    @event("Enabled")
    def _enabled(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        if not self.enabled:
            raise InvalidState(f"image pool {self.name} is already disabled", image_pool_id=self.id)
        self._disabled()

    @event("Disabled")
    def _disabled(self) -> None:
        self.enabled = False
