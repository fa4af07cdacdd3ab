"""Root disks as qcow2 overlays on the host's base images, through ``qemu-img``.

``<state>/disks/<instance>.qcow2`` is a copy-on-write overlay backed by the image file, so
making one takes milliseconds whatever the image's size. A disk is created under a
temporary name and renamed, so a daemon killed mid-create never leaves a half-made disk
that a redelivered command would then take for a finished one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import msgspec
from aiohttp.abc import AbstractResolver

from hostd.storage.fetch import download
from hostd.storage.pools import in_pools, pool_dir
from hostd.storage.port import (
    ImageFetchFailed,
    ImageFile,
    ImageSource,
    RootDisk,
    StorageError,
    UploadStore,
)

log = logging.getLogger(__name__)
GIB = 1024**3
SOURCE_FORMATS = frozenset({"qcow2", "raw"})
"""Only these: a vmdk descriptor (and others) can name host files as its extents."""
MAX_DOWNLOAD = 256 * GIB
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class _Info(msgspec.Struct, rename="kebab"):
    virtual_size: int
    format: str
    backing_filename: str | None = None


class Qcow2Storage:
    def __init__(
        self,
        state_dir: Path,
        *,
        pools: Sequence[Path] | None = None,
        qemu_img: str = "qemu-img",
        max_download: int = MAX_DOWNLOAD,
        resolver: AbstractResolver | None = None,
        uploads: UploadStore | None = None,
    ) -> None:
        self.disks = state_dir / "disks"
        self.pools = tuple(pools) if pools is not None else (state_dir / "images",)
        """This host's image pool directories: every image file read or written is in one."""
        self.qemu_img = qemu_img
        self.max_download = max_download
        self.resolver = resolver
        """Answers host names for imports (None: the system's); tenants' URLs are judged
        public-only on top of whatever it answers."""
        self.uploads = uploads

    def path(self, instance_id: str) -> Path:
        if not _SAFE_NAME.match(instance_id) or ".." in instance_id:
            raise StorageError(f"{instance_id!r} cannot name a disk file")
        return self.disks / f"{instance_id}.qcow2"

    def _mark(self, instance_id: str) -> Path:
        path = self.path(instance_id)
        return path.with_name(f"{path.name}.made-by")

    def _made_by(self, instance_id: str) -> str | None:
        try:
            return self._mark(instance_id).read_text().strip() or None
        except FileNotFoundError:
            return None

    async def ensure_root_disk(
        self,
        instance_id: str,
        *,
        image_location: str,
        image_format: str,
        size_gb: int,
        made_by: str | None = None,
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
                made_by=self._made_by(instance_id),
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
        # The mark is in place before the disk is: a disk never shows another step's mark.
        mark = self._mark(instance_id)
        if made_by is None:
            mark.unlink(missing_ok=True)
        else:
            mark.with_name(f"{mark.name}.part").write_text(made_by)
            os.replace(mark.with_name(f"{mark.name}.part"), mark)
        os.replace(partial, path)
        return RootDisk(
            path=str(path), image_location=image_location, size_gb=size_gb, made_by=made_by
        )

    async def delete_root_disk(self, instance_id: str) -> None:
        path = self.path(instance_id)
        path.with_name(f"{path.name}.part").unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        self._mark(instance_id).unlink(missing_ok=True)

    async def root_disk(self, instance_id: str) -> RootDisk | None:
        path = self.path(instance_id)
        if not path.exists():
            return None
        info = await self._info(path)
        return RootDisk(
            path=str(path),
            image_location=info.backing_filename or "",
            size_gb=-(-info.virtual_size // GIB),
            made_by=self._made_by(instance_id),
        )

    async def import_image(self, image_id: str, *, source: ImageSource, pool: str) -> ImageFile:
        final = self._image_path(pool, image_id)
        if final.exists():
            return await self._image_file(final)
        if sum(given is not None for given in (source.url, source.path, source.upload)) != 1:
            raise StorageError("an import needs exactly one of a URL, a path and an upload")
        if source.format is not None and source.format not in SOURCE_FORMATS:
            raise StorageError(f"cannot import images of format {source.format!r}")
        final.parent.mkdir(parents=True, exist_ok=True)
        partial_download = final.with_name(f"{final.name}.download")
        try:
            if source.url is not None:
                await download(
                    source.url,
                    partial_download,
                    public_only=source.public_only,
                    max_bytes=self.max_download,
                    resolver=self.resolver,
                )
                origin = partial_download
            elif source.upload is not None:
                await self._fetch_upload(source, partial_download)
                origin = partial_download
            else:
                origin = self._incoming(pool, source.path or "")
            await self._convert(origin, source.format, final)
        finally:
            partial_download.unlink(missing_ok=True)
        if source.upload is not None and self.uploads is not None:
            await self.uploads.discard(source.upload)  # in the pool now: staged no longer
        return await self._image_file(final)

    async def _fetch_upload(self, source: ImageSource, into: Path) -> None:
        if self.uploads is None:
            raise ImageFetchFailed("image_upload_missing", "this host has no upload store")
        try:
            digest = await self.uploads.fetch(source.upload or "", into)
        except Exception as error:  # any failure of the store: its words stay in the log
            log.info("fetching upload %s: %r", source.upload, error)
            raise ImageFetchFailed("image_upload_missing", "the upload is not staged") from None
        if source.sha256 is None or digest != source.sha256.lower():
            raise ImageFetchFailed("image_upload_mismatch", "the staged bytes' SHA-256 differs")

    async def export_image(self, instance_id: str, *, image_id: str, pool: str) -> ImageFile:
        final = self._image_path(pool, image_id)
        if final.exists():
            return await self._image_file(final)
        disk = self.path(instance_id)
        if not disk.exists():
            raise StorageError(f"{instance_id} has no root disk on this host")
        final.parent.mkdir(parents=True, exist_ok=True)
        # Flattened: the result has no backing file (convert reads through the chain). A
        # running guest holds its disk's write lock, so qemu-img refuses one that runs.
        await self._write_qcow2(disk, "qcow2", final)
        return await self._image_file(final)

    async def image_file(self, location: str) -> str:
        real = in_pools(location, self.pools)
        if not real.is_file():
            raise StorageError(f"{location} is not a file on this host")
        return str(real)

    def _image_path(self, pool: str, image_id: str) -> Path:
        root = pool_dir(pool, self.pools)
        if not _SAFE_NAME.match(image_id) or ".." in image_id:
            raise StorageError(f"{image_id!r} cannot name an image file")
        return root / f"{image_id}.qcow2"

    @staticmethod
    def _incoming(pool: str, path: str) -> Path:
        """The source file, which must be (after symlinks) in ``<pool>/incoming``."""
        incoming = Path(os.path.realpath(Path(pool) / "incoming"))
        real = Path(os.path.realpath(path))
        if not Path(path).is_absolute() or not real.is_relative_to(incoming) or real == incoming:
            raise StorageError(f"{path} is not in the image pool's incoming directory {incoming}")
        if not real.is_file():
            raise StorageError(f"{path} is not a file on this host")
        return real

    async def _convert(self, origin: Path, source_format: str | None, final: Path) -> None:
        """Check what the source really is, then write it as a standalone qcow2 file."""
        args = ["info", "--output=json"]
        if source_format is not None:
            args += ["-f", source_format]
        try:
            info = json.loads(await self._run(*args, str(origin)))
        except (StorageError, ValueError) as error:
            # qemu-img's words name host paths and may quote the file: the log keeps them.
            log.info("qemu-img info %s: %s", origin, error)
            expected = f"a {source_format} image" if source_format else "a disk image"
            raise ImageFetchFailed(
                "image_source_unreadable", f"the source is not {expected}"
            ) from None
        found = info.get("format")
        if found not in SOURCE_FORMATS:
            raise ImageFetchFailed(
                "image_source_format", f"the source is {str(found)[:20]!r}, not qcow2 or raw"
            )
        data = (info.get("format-specific") or {}).get("data") or {}
        if info.get("backing-filename") or info.get("full-backing-filename"):
            raise ImageFetchFailed(
                "image_source_format", "the source has a backing file; import a standalone image"
            )
        if data.get("data-file"):
            raise ImageFetchFailed(
                "image_source_format",
                "the source has an external data file; import a standalone image",
            )
        try:
            await self._write_qcow2(origin, str(found), final)
        except StorageError as error:
            log.info("qemu-img convert %s: %s", origin, error)
            raise ImageFetchFailed(
                "image_source_unreadable", "the image could not be converted"
            ) from None

    async def _write_qcow2(self, origin: Path, source_format: str, final: Path) -> None:
        partial = final.with_name(f"{final.name}.part")
        partial.unlink(missing_ok=True)
        try:
            await self._run(
                "convert", "-q", "-f", source_format, "-O", "qcow2", str(origin), str(partial)
            )
            os.replace(partial, final)
        finally:
            partial.unlink(missing_ok=True)

    async def _image_file(self, path: Path) -> ImageFile:
        info = await self._info(path, "qcow2")
        size, digest = await asyncio.to_thread(_measure, path)
        return ImageFile(
            location=str(path), size_bytes=size, virtual_size_bytes=info.virtual_size, sha256=digest
        )

    def _base(self, image_location: str) -> Path:
        if image_location.startswith("rbd:"):
            raise StorageError(f"image {image_location} is in Ceph; this host keeps qcow2 files")
        base = in_pools(image_location, self.pools)
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


def _measure(path: Path) -> tuple[int, str]:
    """The file's size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()
