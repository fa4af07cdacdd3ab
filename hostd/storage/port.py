"""The storage port: what a host daemon needs to give an instance its root disk.

Every call states a desired state and is idempotent, like the compute port: a redelivered
command finds the disk already there and leaves it alone.
"""

from __future__ import annotations

from typing import Protocol

import msgspec


class RootDisk(msgspec.Struct, frozen=True, kw_only=True):
    path: str
    """What the compute driver is given as the domain's disk."""
    image_location: str
    size_gb: int
    format: str = "qcow2"


class StorageError(Exception):
    """The disk could not be made or removed; the message is the cause in the outcome."""


class StorageDriver(Protocol):
    async def ensure_root_disk(
        self, instance_id: str, *, image_location: str, image_format: str, size_gb: int
    ) -> RootDisk:
        """The root disk exists, made from the image, at ``size_gb``.

        An existing disk is kept (it holds the guest's data) and grown when ``size_gb`` is
        larger; asking for a smaller one is refused, since shrinking loses data.
        """
        ...

    async def delete_root_disk(self, instance_id: str) -> None:
        """Gone afterwards; absent already is fine."""
        ...

    async def root_disk(self, instance_id: str) -> RootDisk | None: ...
