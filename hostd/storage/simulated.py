"""A storage driver that keeps disks in memory: for scale tests with thousands of hosts."""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import msgspec

from gateways.public_addresses import literal, refusal
from hostd.storage.pools import OUTSIDE
from hostd.storage.port import ImageFetchFailed, ImageFile, ImageSource, RootDisk, StorageError

GIB = 1024**3


class SimulatedStorage:
    def __init__(
        self,
        images: Collection[str] | None = None,
        root: str = "/sim/disks",
        *,
        pools: Collection[str] | None = None,
    ) -> None:
        """``images`` are the base images this host has; None means every image exists.
        ``pools`` are its image pool directories; None: any absolute directory is one."""
        self.images = images
        self.root = root
        self.pools = pools
        self.disks: dict[str, RootDisk] = {}
        self.imports: dict[str, ImageSource] = {}
        """Image location → what it was imported from (nothing is fetched)."""
        self.exports: dict[str, str] = {}
        """Image location → the instance whose disk it was made from."""
        self.made: dict[str, ImageFile] = {}

    async def ensure_root_disk(
        self,
        instance_id: str,
        *,
        image_location: str,
        image_format: str,
        size_gb: int,
        made_by: str | None = None,
    ) -> RootDisk:
        disk = self.disks.get(instance_id)
        if disk is not None:
            if size_gb < disk.size_gb:
                raise StorageError(
                    f"{instance_id}: root disk is {disk.size_gb} GB, shrinking to {size_gb} GB "
                    "is not supported"
                )
            if size_gb > disk.size_gb:
                disk = self.disks[instance_id] = msgspec.structs.replace(disk, size_gb=size_gb)
            return disk
        if image_location.startswith("rbd:"):  # a Ceph image: no file of this host
            if self.images is not None and image_location not in self.images:
                raise StorageError(f"image {image_location} is not on this host")
        else:
            await self.image_file(image_location)
        if size_gb < 1:
            raise StorageError(f"{instance_id}: a root disk needs at least 1 GB")
        disk = RootDisk(
            path=f"{self.root}/{instance_id}.qcow2",
            image_location=image_location,
            size_gb=size_gb,
            made_by=made_by,
        )
        self.disks[instance_id] = disk
        return disk

    async def delete_root_disk(self, instance_id: str) -> None:
        self.disks.pop(instance_id, None)

    async def root_disk(self, instance_id: str) -> RootDisk | None:
        return self.disks.get(instance_id)

    async def image_file(self, location: str) -> str:
        path = PurePosixPath(location)
        inside = path.is_absolute() and ".." not in path.parts
        if inside and self.pools is not None:
            inside = any(path.is_relative_to(p) and str(path) != p for p in self.pools)
        if not inside:
            raise StorageError(f"{OUTSIDE}: {location} is not in an image pool of this host")
        if self.images is not None and location not in self.images:
            raise StorageError(f"image {location} is not on this host")
        return location

    def _pool(self, pool: str) -> str:
        if self.pools is not None and pool not in self.pools:
            raise StorageError(f"{OUTSIDE}: {pool} is not an image pool of this host")
        return pool

    async def import_image(self, image_id: str, *, source: ImageSource, pool: str) -> ImageFile:
        location = _image_location(self._pool(pool), image_id)
        if location in self.made:
            return self.made[location]
        if sum(given is not None for given in (source.url, source.path, source.upload)) != 1:
            raise StorageError("an import needs exactly one of a URL, a path and an upload")
        if source.upload is not None:
            if source.sha256 is None:
                raise ImageFetchFailed("image_upload_mismatch", "no SHA-256 to check")
        elif source.url is not None:
            parts = urlsplit(source.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ImageFetchFailed("image_source_invalid", "only http:// and https:// URLs")
            address = literal(parts.hostname)
            reason = None if address is None else refusal(address)
            if source.public_only and reason is not None:
                raise ImageFetchFailed("image_source_not_public", f"the address is {reason}")
        else:
            path = PurePosixPath(source.path or "")
            incoming = PurePosixPath(pool) / "incoming"
            if ".." in path.parts or not path.is_relative_to(incoming) or path == incoming:
                raise StorageError(
                    f"{source.path} is not in the image pool's incoming directory {incoming}"
                )
            if self.images is not None and str(path) not in self.images:
                raise StorageError(f"{source.path} is not a file on this host")
        self.imports[location] = source
        return self._made(location, source.url or source.path or source.upload or "", GIB)

    async def export_image(self, instance_id: str, *, image_id: str, pool: str) -> ImageFile:
        location = _image_location(self._pool(pool), image_id)
        if location in self.made:
            return self.made[location]
        disk = self.disks.get(instance_id)
        if disk is None:
            raise StorageError(f"{instance_id} has no root disk on this host")
        self.exports[location] = instance_id
        return self._made(location, f"{instance_id}:{disk.image_location}", disk.size_gb * GIB)

    def _made(self, location: str, origin: str, virtual_size: int) -> ImageFile:
        made = self.made[location] = ImageFile(
            location=location,
            size_bytes=1 << 20,
            virtual_size_bytes=virtual_size,
            sha256=hashlib.sha256(origin.encode()).hexdigest(),
        )
        return made


def _image_location(pool: str, image_id: str) -> str:
    if not pool.startswith("/") or ".." in pool.split("/") or "/" in image_id or ".." in image_id:
        raise StorageError(f"{image_id!r} in {pool!r} cannot name an image file")
    return f"{pool.rstrip('/')}/{image_id}.qcow2"
