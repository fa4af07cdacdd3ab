"""The storage port: what a host daemon needs to give an instance its root disk.

Every call states a desired state and is idempotent, like the compute port: a redelivered
command finds the disk already there and leaves it alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import msgspec


class RootDisk(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    """What the compute driver is given as the domain's disk."""
    image_location: str
    size_gb: int
    format: str = "qcow2"
    made_by: str | None = None
    """The step that made it, when one asked to be recorded: kept with the disk, so a step
    redelivered after a daemon restart can tell its work is done (a reinstall)."""


class ImageSource(msgspec.Struct, frozen=True, kw_only=True):
    """Exactly one of ``url`` (http or https), ``path`` (a file in the pool's incoming
    directory, ``<pool>/incoming/``) and ``upload`` (bytes a tenant uploaded, staged in the
    platform's upload store, with their ``sha256``)."""

    url: str | None = None
    path: str | None = None
    upload: str | None = None
    sha256: str | None = None
    format: str | None = None
    """``qemu-img -f``; None lets qemu-img probe."""
    public_only: bool = True
    """The URL is a tenant's: every connection goes to public addresses only (checked at
    each connection, so a name rebound to 127.0.0.1 after the API's check is refused too).
    False only for staff imports, which may come from the operator's own network."""


class ImageFile(msgspec.Struct, frozen=True, kw_only=True):
    """A finished image in a pool: always qcow2, with no backing file."""

    location: str
    size_bytes: int
    virtual_size_bytes: int
    sha256: str
    format: str = "qcow2"


class StorageError(Exception):
    """The disk could not be made or removed; the message is the cause in the outcome."""


class ImageFetchFailed(StorageError):
    """An import's source could not be fetched or read: a stable code and a short cause.

    The message is all a tenant ever sees of it (the image's ``error``): never the source's
    answer, a host path or a tool's output, which could show what an internal service said.
    """

    def __init__(self, code: str, cause: str) -> None:
        super().__init__(f"{code}: {cause}")
        self.code = code


class UploadStore(Protocol):
    """Where uploaded images wait for their host (``gateways.bus.image_uploads``)."""

    async def fetch(self, name: str, into: Path) -> str:
        """The staged bytes written to ``into``; their SHA-256 (hex)."""
        ...

    async def discard(self, name: str) -> None: ...


class StorageDriver(Protocol):
    async def ensure_root_disk(
        self,
        instance_id: str,
        *,
        image_location: str,
        image_format: str,
        size_gb: int,
        made_by: str | None = None,
    ) -> RootDisk:
        """The root disk exists, made from the image, at ``size_gb``.

        An existing disk is kept (it holds the guest's data, and its ``made_by``) and grown
        when ``size_gb`` is larger; asking for a smaller one is refused, since shrinking
        loses data. A disk made now records ``made_by``.
        """
        ...

    async def delete_root_disk(self, instance_id: str) -> None:
        """Gone afterwards; absent already is fine."""
        ...

    async def root_disk(self, instance_id: str) -> RootDisk | None: ...

    async def image_file(self, location: str) -> str:
        """The file ``location`` names (a kernel, an initrd, a base image), as the
        hypervisor should be given it; StorageError unless it lies inside one of this
        host's image pools (after symlinks), whoever asked."""
        ...

    async def import_image(self, image_id: str, *, source: ImageSource, pool: str) -> ImageFile:
        """``<pool>/<image_id>.qcow2`` exists, converted from the source; its size and digest.

        Idempotent: an image already there is reported again, never fetched twice. A scheme
        other than http(s), a path outside ``<pool>/incoming``, a pool that is not one of
        this host's, or a source with a backing file is refused with StorageError.
        """
        ...

    async def export_image(self, instance_id: str, *, image_id: str, pool: str) -> ImageFile:
        """The instance's root disk flattened (no backing file) into ``<pool>/<image_id>.qcow2``."""
        ...
