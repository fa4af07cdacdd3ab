"""Root disks as qcow2 overlays on the host's base images, through ``qemu-img``.

``<state>/disks/<instance>.qcow2`` is a copy-on-write overlay backed by the image file, so
making one takes milliseconds whatever the image's size. A disk is created under a
temporary name and renamed, so a daemon killed mid-create never leaves a half-made disk
that a redelivered command would then take for a finished one.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import msgspec

from hostd.storage.port import RootDisk, StorageError

GIB = 1024**3
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Info(msgspec.Struct, rename="kebab"):
    virtual_size: int
    format: str
    backing_filename: str | None = None


class Qcow2Storage:
    def __init__(self, state_dir: Path, *, qemu_img: str = "qemu-img") -> None:
        self.disks = state_dir / "disks"
        self.qemu_img = qemu_img

    def path(self, instance_id: str) -> Path:
        if not _SAFE_NAME.match(instance_id) or ".." in instance_id:
            raise StorageError(f"{instance_id!r} cannot name a disk file")
        return self.disks / f"{instance_id}.qcow2"

    async def ensure_root_disk(
        self, instance_id: str, *, image_location: str, image_format: str, size_gb: int
    ) -> RootDisk:
        path = self.path(instance_id)
        if path.exists():
            info = await self._info(path)
            current = -(-info.virtual_size // GIB)
            if size_gb < current:
                raise StorageError(
                    f"{instance_id}: root disk is {current} GB, shrinking to {size_gb} GB "
                    "is not supported"
                )
            if info.virtual_size < size_gb * GIB:
                await self._run("resize", "-f", "qcow2", str(path), f"{size_gb}G")
            return RootDisk(
                path=str(path),
                image_location=info.backing_filename or image_location,
                size_gb=size_gb,
            )
        base = self._base(image_location)
        base_info = await self._info(base, image_format)
        if base_info.virtual_size > size_gb * GIB:
            needed = -(-base_info.virtual_size // GIB)
            raise StorageError(
                f"image {image_location} needs a disk of at least {needed} GB, not {size_gb} GB"
            )
        self.disks.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.part")
        partial.unlink(missing_ok=True)
        await self._run(
            "create", "-q", "-f", "qcow2", "-b", str(base), "-F", image_format,
            str(partial), f"{size_gb}G",
        )  # fmt: skip
        os.replace(partial, path)
        return RootDisk(path=str(path), image_location=image_location, size_gb=size_gb)

    async def delete_root_disk(self, instance_id: str) -> None:
        path = self.path(instance_id)
        path.with_name(f"{path.name}.part").unlink(missing_ok=True)
        path.unlink(missing_ok=True)

    async def root_disk(self, instance_id: str) -> RootDisk | None:
        path = self.path(instance_id)
        if not path.exists():
            return None
        info = await self._info(path)
        return RootDisk(
            path=str(path),
            image_location=info.backing_filename or "",
            size_gb=-(-info.virtual_size // GIB),
        )

    def _base(self, image_location: str) -> Path:
        if image_location.startswith("rbd:"):
            raise StorageError(f"image {image_location} is in Ceph; this host keeps qcow2 files")
        base = Path(image_location)
        if not base.is_absolute():
            raise StorageError(f"image location {image_location} is not an absolute path")
        if not base.is_file():
            raise StorageError(f"image {image_location} is not on this host")
        return base

    async def _info(self, path: Path, image_format: str | None = None) -> _Info:
        # -U: a running guest holds a write lock on its disk; reading metadata is safe.
        args = ["info", "-U", "--output=json"]
        if image_format:
            args += ["-f", image_format]
        output = await self._run(*args, str(path))
        try:
            return msgspec.json.decode(output, type=_Info)
        except msgspec.DecodeError as error:
            raise StorageError(f"qemu-img info {path}: {error}") from error

    async def _run(self, *args: str) -> bytes:
        try:
            process = await asyncio.create_subprocess_exec(
                self.qemu_img,
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            raise StorageError(f"cannot run {self.qemu_img}: {error}") from error
        output, errors = await process.communicate()
        if process.returncode != 0:
            message = errors.decode(errors="replace").strip() or f"exit {process.returncode}"
            raise StorageError(f"qemu-img {args[0]}: {message}")
        return output
