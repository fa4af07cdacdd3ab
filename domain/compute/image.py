"""An image: a bootable disk (or kernel and initrd) in a region's image pool."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any

from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.errors import Forbidden, InvalidState, ValidationFailed

ARCHITECTURES = ("x86_64", "aarch64")
FORMATS = ("qcow2", "raw")
SOURCE_FORMATS = ("qcow2", "raw")
"""What an import may be converted from (given, or probed by the host when left out)."""
UPLOADING, IMPORTING, AVAILABLE, ERROR = "uploading", "importing", "available", "error"
IMPORT_DEADLINE = timedelta(seconds=900)
UPLOAD_DEADLINE = timedelta(hours=1)
"""How long an image made for an upload waits for its bytes before it ends in ``error``."""
MAX_UPLOAD_BYTES = 64 * 1024**3
"""Longer than a host's own apply timeout (600 s): a live host reports a stuck import first."""
INCOMING = "incoming"
"""The directory of an image pool from which an admin may import files by path."""


class ImageSourceInvalid(ValidationFailed):
    """Not an http(s) URL, or a path that is not a file in the pool's incoming directory."""

    code = "image_source_invalid"


class ImageSourceNotPublic(ValidationFailed):
    """A tenant's URL points at a loopback, link-local or private address."""

    code = "image_source_not_public"


class ImagePathOutsidePool(ValidationFailed):
    """A registered image's file (or kernel, or initrd) is not a file of its image pool."""

    code = "image_path_outside_pool"


_RBD_IMAGE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$")


def check_pool_file(backend: str, pool_location: str, path: str, field: str) -> str:
    """``path`` names a file inside the pool: under its directory (absolute, normalised, no
    ``..``; hosts check symlinks again), or an image of its Ceph pool (``pool/image``)."""
    if backend == "rbd" and field == "location":
        pool, _, name = path.partition("/")
        if pool == pool_location and _RBD_IMAGE.fullmatch(name):
            return path
        raise ImagePathOutsidePool(
            f"{path!r} is not an image of the Ceph pool {pool_location} ({pool_location}/NAME)",
            field=field,
        )
    candidate = PurePosixPath(path)
    root = PurePosixPath(pool_location)
    if (
        backend == "rbd"  # a kernel or initrd is a file: a Ceph pool holds none
        or not candidate.is_absolute()
        or ".." in candidate.parts
        or str(candidate) != path
        or not candidate.is_relative_to(root)
        or candidate == root
    ):
        raise ImagePathOutsidePool(
            f"{path!r} is not a file in the image pool's directory {pool_location}/",
            field=field,
            allowed_directory=pool_location,
        )
    return path


class ImageUploadMismatch(ValidationFailed):
    """The uploaded bytes are not the size or the SHA-256 the image was created with."""

    code = "image_upload_mismatch"


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
        deadline: datetime | None = None,
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
        self.deadline: datetime | None = deadline
        """When an import (or an awaited upload) ends in ``error`` if nothing came."""
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

    # -- upload, import and export ------------------------------------------------------

    @classmethod
    def for_upload(
        cls,
        tenant_id: str,
        name: str,
        region_id: str,
        pool_id: str,
        *,
        size_bytes: int,
        sha256: str,
        source_format: str | None,
        architecture: str,
        os_family: str,
        min_disk_gb: int,
    ) -> Image:
        """A private image waiting for its bytes (``PUT …/file``) of this size and digest."""
        if not 0 < size_bytes <= MAX_UPLOAD_BYTES:
            raise ValidationFailed(
                f"size_bytes must be between 1 and {MAX_UPLOAD_BYTES}", field="size_bytes"
            )
        source = {"upload": sha256.lower(), "size_bytes": str(size_bytes)}
        if source_format is not None:
            source["format"] = source_format
        return cls.incoming(
            tenant_id,
            name,
            region_id,
            pool_id,
            status=UPLOADING,
            source=source,
            architecture=architecture,
            os_family=os_family,
            min_disk_gb=min_disk_gb,
            deadline=clock.now() + UPLOAD_DEADLINE,
        )

    @classmethod
    def incoming(
        cls,
        tenant_id: str | None,
        name: str,
        region_id: str,
        pool_id: str,
        *,
        status: str,
        source: dict[str, str],
        architecture: str,
        os_family: str,
        min_disk_gb: int,
        deadline: datetime | None = None,
    ) -> Image:
        """An image whose bytes are still to come (imported or uploaded): no file in the
        pool yet, qcow2 once they arrive."""
        return cls(
            tenant_id=tenant_id,
            name=name,
            region_id=region_id,
            pool_id=pool_id,
            location="",
            disk_format="qcow2",
            architecture=architecture,
            os_family=os_family,
            min_disk_gb=min_disk_gb,
            kernel=None,
            initrd=None,
            cmdline=None,
            status=status,
            source=source,
            deadline=deadline,
        )

    @property
    def expected_upload(self) -> tuple[int, str] | None:
        """(size, SHA-256) of the bytes an image waiting for an upload takes."""
        source = self.source or {}
        if self.status != UPLOADING or "upload" not in source:
            return None
        return int(source["size_bytes"]), source["upload"]

    def upload_received(self, size_bytes: int, sha256: str, host_id: str, step_id: str) -> None:
        """The bytes are staged for the pool: the chosen host converts them into it."""
        expected = self.expected_upload
        if expected is None or self.deleted:
            raise InvalidState("the image is not waiting for an upload", image_id=self.id)
        if (size_bytes, sha256.lower()) != expected:
            raise ImageUploadMismatch(
                f"the upload is {size_bytes} bytes with SHA-256 {sha256}; the image was "
                f"created for {expected[0]} bytes with SHA-256 {expected[1]}",
                field="sha256",
            )
        self._uploaded(size_bytes)
        self.start_import(host_id, step_id)

    @event("Uploaded")
    def _uploaded(self, size_bytes: int) -> None:
        self.status = IMPORTING
        self.deadline = None

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
        if self.status not in (IMPORTING, UPLOADING) or self.deleted:
            return False
        if self.deadline is None or now < self.deadline:
            return False
        what = "upload" if self.status == UPLOADING else "import"
        self._import_failed(
            self.step_id or "", f"the {what} did not finish by {self.deadline.isoformat()}"
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
