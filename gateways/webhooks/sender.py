"""One HTTP attempt: POST the signed body, time it, and say how it went."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from urllib.parse import urlsplit

import aiohttp
import msgspec

from gateways.public_addresses import PublicOnlyResolver, literal, refusal

USER_AGENT = "SCloudStack-Webhooks/1"
_KEPT_RESPONSE_BYTES = 200


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    status_code: int | None
    latency_ms: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


class WebhookSender:
    """Two sessions: one that only ever connects to public addresses, one that may not."""

    def __init__(self, timeout: float, *, loopback_only: bool = False) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.loopback_only = loopback_only
        self._public: aiohttp.ClientSession | None = None
        self._any: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> WebhookSender:
        headers = {"User-Agent": USER_AGENT}
        self._public = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(resolver=PublicOnlyResolver()),
            timeout=self.timeout,
            headers=headers,
        )
        self._any = aiohttp.ClientSession(timeout=self.timeout, headers=headers)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for session in (self._public, self._any):
            if session is not None:
                await session.close()

    async def send(
        self, url: str, body: bytes, headers: dict[str, str], *, allow_private: bool
    ) -> Attempt:
        started = time.perf_counter()

        def took() -> float:
            return round((time.perf_counter() - started) * 1000, 3)

        session = self._any if allow_private else self._public
        assert session is not None, "use the sender as an async context manager"
        if self.loopback_only:
            address = literal(urlsplit(url).hostname or "")
            if address is None or not address.is_loopback:
                return Attempt(
                    status_code=None,
                    latency_ms=0.0,
                    error="this platform delivers to loopback only",
                )
        if not allow_private:
            # aiohttp does not ask the resolver about literal addresses: judge them here.
            address = literal(urlsplit(url).hostname or "")
            reason = None if address is None else refusal(address)
            if reason is not None:
                return Attempt(status_code=None, latency_ms=0.0, error=f"{address} is {reason}")
        try:
            async with session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", **headers},
                allow_redirects=False,
            ) as response:
                text = await response.content.read(_KEPT_RESPONSE_BYTES)
                if 200 <= response.status < 300:
                    return Attempt(status_code=response.status, latency_ms=took(), error=None)
                excerpt = text.decode(errors="replace").strip()
                return Attempt(
                    status_code=response.status,
                    latency_ms=took(),
                    error=f"HTTP {response.status}" + (f": {excerpt}" if excerpt else ""),
                )
        except TimeoutError:
            return Attempt(status_code=None, latency_ms=took(), error="timed out")
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as error:
            detail = str(error) or type(error).__name__
            return Attempt(status_code=None, latency_ms=took(), error=detail[:500])
