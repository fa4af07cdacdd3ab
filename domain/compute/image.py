"""An image: a bootable disk (or kernel and initrd) in a region's image pool."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState, ValidationFailed

ARCHITECTURES = ("x86_64", "aarch64")
FORMATS = ("qcow2", "raw")


class Image(Aggregate):
    id_prefix = "img"

    def __init__(
        self,
        tenant_id: str | None,
        name: str,
        region_id: str,
        pool_id: str,
        location: str,
        disk_format: str,
        architecture: str,
        os_family: str,
        min_disk_gb: int,
        kernel: str | None,
        initrd: str | None,
        cmdline: str | None,
    ) -> None:
        if architecture not in ARCHITECTURES:
            raise ValidationFailed(f"architecture must be one of {ARCHITECTURES}")
        if disk_format not in FORMATS:
            raise ValidationFailed(f"format must be one of {FORMATS}")
        if min_disk_gb < 0:
            raise ValidationFailed("min_disk_gb cannot be negative")
        self.tenant_id = tenant_id
        """None for a public image (published by the platform)."""
        self.name = name
        self.region_id = region_id
        self.pool_id = pool_id
        self.location = location
        self.disk_format = disk_format
        self.architecture = architecture
        self.os_family = os_family
        self.min_disk_gb = min_disk_gb
        self.kernel = kernel
        self.initrd = initrd
        self.cmdline = cmdline
        self.shared_with: list[str] = []
        self.deleted = False

    @property
    def public(self) -> bool:
        return self.tenant_id is None

    def usable_by(self, tenant_id: str) -> bool:
        return not self.deleted and (
            self.public or self.tenant_id == tenant_id or tenant_id in self.shared_with
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "visibility": "public" if self.public else "private",
            "region_id": self.region_id,
            "pool_id": self.pool_id,
            "format": self.disk_format,
            "architecture": self.architecture,
            "os_family": self.os_family,
            "min_disk_gb": self.min_disk_gb,
            "direct_kernel_boot": self.kernel is not None,
            "shared_with": self.shared_with,
            "status": "deleted" if self.deleted else "active",
        }

    @event("Shared")
    def share(self, tenant_id: str) -> None:
        if tenant_id not in self.shared_with:
            self.shared_with.append(tenant_id)

    def delete(self) -> None:
        if self.deleted:
            raise InvalidState("the image is already deleted", image_id=self.id)
        self._deleted()

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True
