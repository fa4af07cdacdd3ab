"""An image: a bootable disk (or kernel and initrd) in a region's image pool."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.errors import Forbidden, InvalidState, ValidationFailed

ARCHITECTURES = ("x86_64", "aarch64")
FORMATS = ("qcow2", "raw")
SOURCE_FORMATS = ("qcow2", "raw")
"""What an import may be converted from (given, or probed by the host when left out)."""
IMPORTING, AVAILABLE, ERROR = "importing", "available", "error"
IMPORT_DEADLINE = timedelta(seconds=900)
"""Longer than a host's own apply timeout (600 s): a live host reports a stuck import first."""
INCOMING = "incoming"
"""The directory of an image pool from which an admin may import files by path."""


class ImageSourceInvalid(ValidationFailed):
    """Not an http(s) URL, or a path that is not a file in the pool's incoming directory."""

    code = "image_source_invalid"


class ImageSourceNotPublic(ValidationFailed):
    """A tenant's URL points at a loopback, link-local or private address."""

    code = "image_source_not_public"


class ImagePathImportForbidden(Forbidden):
    """Only platform staff import from a path on the hosts: tenants give URLs."""

    code = "image_path_import_forbidden"


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
        status: str = AVAILABLE,
        source: dict[str, str] | None = None,
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
        self.status = status
        """``importing`` until its host reports the file, then ``available`` (or ``error``)."""
        self.source = source
        """Where an imported image came from: ``url``, ``path`` or ``instance_id``."""
        self.host_id: str | None = None
        self.step_id: str | None = None
        self.deadline: datetime | None = None
        self.size_bytes: int | None = None
        self.virtual_size_bytes: int | None = None
        self.checksum: str | None = None
        self.error: str | None = None

    @property
    def public(self) -> bool:
        return self.tenant_id is None

    def usable_by(self, tenant_id: str) -> bool:
        return (
            not self.deleted
            and self.status == AVAILABLE
            and (self.public or self.tenant_id == tenant_id or tenant_id in self.shared_with)
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
            "status": "deleted" if self.deleted else self.status,
            "source": self.source,
            "size_bytes": self.size_bytes,
            "virtual_size_bytes": self.virtual_size_bytes,
            "checksum": self.checksum,
            "error": self.error,
            "deadline": None if self.deadline is None else self.deadline.isoformat(),
        }

    # -- import and export -------------------------------------------------------------

    def start_import(self, host_id: str, step_id: str) -> None:
        """The chosen host fetches (or flattens) the source into the pool under ``step_id``."""
        if self.status != IMPORTING or self.step_id is not None:
            raise InvalidState("the image is not waiting for an import", image_id=self.id)
        self._import_started(host_id, step_id, clock.now() + IMPORT_DEADLINE)

    @event("ImportStarted")
    def _import_started(self, host_id: str, step_id: str, deadline: datetime) -> None:
        self.host_id = host_id
        self.step_id = step_id
        self.deadline = deadline

    def host_reported(
        self,
        step_id: str,
        *,
        location: str | None,
        size_bytes: int | None,
        virtual_size_bytes: int | None,
        checksum: str | None,
        error: str | None,
    ) -> bool:
        """Apply the host's outcome of the import step; False when it is stale (ignored)."""
        if step_id != self.step_id or self.status != IMPORTING or self.deleted:
            return False
        if error is None and (location is None or size_bytes is None or checksum is None):
            error = "the host reported no image file"
        if error is not None:
            self._import_failed(step_id, error)
        else:
            assert location is not None and size_bytes is not None and checksum is not None
            self._imported(step_id, location, size_bytes, virtual_size_bytes or 0, checksum)
        return True

    @event("Imported")
    def _imported(
        self, step_id: str, location: str, size_bytes: int, virtual_size_bytes: int, checksum: str
    ) -> None:
        self.status = AVAILABLE
        self.location = location
        self.disk_format = "qcow2"
        self.size_bytes = size_bytes
        self.virtual_size_bytes = virtual_size_bytes
        self.checksum = checksum
        self.step_id = None
        self.deadline = None

    @event("ImportFailed")
    def _import_failed(self, step_id: str, cause: str) -> None:
        self.status = ERROR
        self.error = cause
        self.step_id = None
        self.deadline = None

    def time_out(self, now: datetime) -> bool:
        """End an import whose host never reported by its deadline; True if it did."""
        if self.status != IMPORTING or self.deleted:
            return False
        if self.deadline is None or now < self.deadline:
            return False
        self._import_failed(
            self.step_id or "", f"the import did not finish by {self.deadline.isoformat()}"
        )
        return True

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
