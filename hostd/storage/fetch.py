"""Fetching an import's URL onto the host, as a tenant's URL must be fetched.

Every connection goes through ``PublicOnlyResolver`` (the webhooks' resolver), so a name
that the API found public and that now resolves to loopback or the metadata address is
refused at connection time; literal addresses, which aiohttp never resolves, are judged
here. Redirects are refused, not followed: a public server could send the host inside.
A failure is a stable code and a short cause, never the server's answer.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver

from gateways.public_addresses import NotPublic, PublicOnlyResolver, literal, refusal
from hostd.storage.port import ImageFetchFailed

log = logging.getLogger(__name__)
CHUNK = 1 << 20


async def download(
    url: str,
    into: Path,
    *,
    public_only: bool,
    max_bytes: int,
    resolver: AbstractResolver | None = None,
) -> None:
    """``url``'s body in ``into``; ImageFetchFailed with a code when it cannot be had."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageFetchFailed("image_source_invalid", "only http:// and https:// URLs")
    if public_only:
        address = literal(parts.hostname)
        reason = None if address is None else refusal(address)
        if reason is not None:
            raise ImageFetchFailed("image_source_not_public", f"the address is {reason}")
        connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(resolver))
    else:
        connector = aiohttp.TCPConnector(resolver=resolver) if resolver else aiohttp.TCPConnector()
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=120)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
            session.get(url, allow_redirects=False) as response,
        ):
            if 300 <= response.status < 400:
                raise ImageFetchFailed(
                    "image_source_redirected",
                    f"HTTP {response.status}: redirects are not followed; give the final URL",
                )
            if response.status != 200:
                raise ImageFetchFailed("image_source_http_error", f"HTTP {response.status}")
            await _save(response, into, max_bytes)
    except ImageFetchFailed:
        raise
    except TimeoutError:
        raise ImageFetchFailed(
            "image_source_timeout", "the source did not answer in time"
        ) from None
    except aiohttp.ClientConnectorError as error:
        if isinstance(error.os_error, NotPublic):
            cause = f"the host name resolves to a {error.os_error.reason} address"
            raise ImageFetchFailed("image_source_not_public", cause) from None
        log.info("import from %s: %s", url, error)
        raise ImageFetchFailed("image_source_unreachable", "cannot connect") from None
    except (aiohttp.ClientError, OSError) as error:
        # The detail may quote the server (a bad status line): the host's log keeps it.
        log.info("import from %s: %s", url, error)
        raise ImageFetchFailed("image_source_unreachable", type(error).__name__) from None


async def _save(response: aiohttp.ClientResponse, into: Path, max_bytes: int) -> None:
    if response.content_length is not None and response.content_length > max_bytes:
        raise ImageFetchFailed("image_source_too_large", f"larger than {max_bytes} bytes")
    written = 0
    with into.open("wb") as file:
        async for chunk in response.content.iter_chunked(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise ImageFetchFailed("image_source_too_large", f"larger than {max_bytes} bytes")
            await asyncio.to_thread(file.write, chunk)
