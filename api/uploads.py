"""A request body streamed to a file, hashed on the way, and never past its size.

The JSON limit (4 MiB) does not apply: an image is gigabytes. The declared size is the
limit instead, checked against ``Content-Length`` before a byte is read and again while
reading (a chunked body has no length).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from api.routing import UnsupportedMediaType
from domain.errors import ValidationFailed

OCTET_STREAM = "application/octet-stream"
CHUNK = 1 << 20


class UploadTooLarge(ValidationFailed):
    code = "request_entity_too_large"
    status = 413


class Received:
    def __init__(self, file: BinaryIO, size: int, sha256: str) -> None:
        self.file = file
        self.size = size
        self.sha256 = sha256


@contextlib.asynccontextmanager
async def received(request: web.Request, limit: int, staging: Path) -> AsyncIterator[Received]:
    """The body in a temporary file under ``staging`` (removed afterwards), at most ``limit``
    bytes, with its size and SHA-256."""
    if request.content_type != OCTET_STREAM:
        raise UnsupportedMediaType(f"invalid header: send the bytes as {OCTET_STREAM}")
    declared = request.content_length
    if declared is not None and declared > limit:
        raise UploadTooLarge(f"the body is {declared} bytes; this image takes {limit}")
    await asyncio.to_thread(staging.mkdir, parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile(dir=staging) as file:
        async for chunk in request.content.iter_chunked(CHUNK):
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge(f"the body is larger than the {limit} bytes this image takes")
            digest.update(chunk)
            await asyncio.to_thread(file.write, chunk)
        await asyncio.to_thread(file.flush)
        file.seek(0)
        yield Received(file, size, digest.hexdigest())
