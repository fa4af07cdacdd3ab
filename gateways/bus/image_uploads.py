"""Uploaded image bytes on their way to a host's pool: a JetStream object store.

The API stages a tenant's upload here (after checking its size and SHA-256) and the host
that imports it fetches it over the NATS connection it already has, authenticated as
itself: no URL a tenant could call, no way into the platform from a host, and nothing a
host must reach but NATS. Objects are named after their image and expire after ``TTL``
(longer than an import's deadline); the host removes one once its image is in the pool.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import BinaryIO

from nats.js import JetStreamContext
from nats.js.api import ObjectStoreConfig, StorageType
from nats.js.errors import BucketNotFoundError, NotFoundError
from nats.js.object_store import ObjectStore

BUCKET = "SCLOUD_IMAGE_UPLOADS"
TTL = 2 * 3600.0


class UploadMissing(Exception):
    """No staged bytes of that name (expired, or never staged)."""


class ImageUploads:
    def __init__(self, js: JetStreamContext, bucket: str = BUCKET) -> None:
        self.js = js
        self.bucket = bucket
        self._store: ObjectStore | None = None

    async def _open(self) -> ObjectStore:
        if self._store is None:
            try:
                self._store = await self.js.object_store(self.bucket)
            except BucketNotFoundError:
                config = ObjectStoreConfig(
                    bucket=self.bucket,
                    description="image uploads staged for a host's pool",
                    ttl=TTL,
                    storage=StorageType.FILE,
                )
                self._store = await self.js.create_object_store(self.bucket, config=config)
        return self._store

    async def stage(self, name: str, data: BinaryIO) -> None:
        await (await self._open()).put(name, data)  # type: ignore[arg-type]

    async def fetch(self, name: str, into: Path) -> str:
        """The object written to ``into``; its SHA-256 (hex) as read."""
        store = await self._open()
        with into.open("wb") as file:
            try:
                await store.get(name, writeinto=file)
            except NotFoundError:
                raise UploadMissing(name) from None
        return await _sha256(into)

    async def discard(self, name: str) -> None:
        try:
            await (await self._open()).delete(name)
        except NotFoundError:
            pass


async def _sha256(path: Path) -> str:
    def digest() -> str:
        h = hashlib.sha256()
        with path.open("rb") as file:
            while chunk := file.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()

    return await asyncio.to_thread(digest)
