"""A storage driver that keeps disks in memory: for scale tests with thousands of hosts."""

from __future__ import annotations

from collections.abc import Collection

from hostd.storage.port import RootDisk, StorageError


class SimulatedStorage:
    def __init__(self, images: Collection[str] | None = None, root: str = "/sim/disks") -> None:
        """``images`` are the base images this host has; None means every image exists."""
        self.images = images
        self.root = root
        self.disks: dict[str, RootDisk] = {}

    async def ensure_root_disk(
        self, instance_id: str, *, image_location: str, image_format: str, size_gb: int
    ) -> RootDisk:
        disk = self.disks.get(instance_id)
        if disk is not None:
            if size_gb < disk.size_gb:
                raise StorageError(
                    f"{instance_id}: root disk is {disk.size_gb} GB, shrinking to {size_gb} GB "
                    "is not supported"
                )
            if size_gb > disk.size_gb:
                disk = self.disks[instance_id] = RootDisk(
                    path=disk.path, image_location=disk.image_location, size_gb=size_gb
                )
            return disk
        if self.images is not None and image_location not in self.images:
            raise StorageError(f"image {image_location} is not on this host")
        if size_gb < 1:
            raise StorageError(f"{instance_id}: a root disk needs at least 1 GB")
        disk = RootDisk(
            path=f"{self.root}/{instance_id}.qcow2", image_location=image_location, size_gb=size_gb
        )
        self.disks[instance_id] = disk
        return disk

    async def delete_root_disk(self, instance_id: str) -> None:
        self.disks.pop(instance_id, None)

    async def root_disk(self, instance_id: str) -> RootDisk | None:
        return self.disks.get(instance_id)
