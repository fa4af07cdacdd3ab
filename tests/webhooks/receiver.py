"""A webhook receiver on 127.0.0.1 that can answer errors, hang, or close its port."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def event(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 that can answer errors, hang, or close its port."""

    port: int = 0
    answer: int = 204
    hang: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None
    _site: web.TCPSite | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def acknowledged(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def first_acknowledged(self) -> dict[str, Received]:
        """Acknowledged requests deduplicated by event id, the way receivers should."""
        seen: dict[str, Received] = {}
        for received in self.acknowledged:
            seen.setdefault(received.headers["Scloud-Event-Id"], received)
        return seen

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hang:
            # Longer than the sender's timeout: it has given up before this answer.
            await asyncio.sleep(self.hang)
            self.requests.append(Received(dict(request.headers), body, 0))
            return web.Response(status=504)
        self.requests.append(Received(dict(request.headers), body, self.answer))
        self._arrived.set()
        return web.Response(status=self.answer)

    async def until_acknowledged(self, count: int, timeout: float) -> None:
        """Wait until ``count`` requests were acknowledged."""
        async with asyncio.timeout(timeout):
            while len(self.acknowledged) < count:
                self._arrived.clear()
                await self._arrived.wait()

    async def up(self) -> None:
        if self._runner is None:
            app = web.Application()
            app.router.add_post("/hook", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()
        if self.port == 0:
            self.port = self._runner.addresses[0][1]

    async def down(self) -> None:
        """Close the port: connections are refused until ``up``."""
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def close(self) -> None:
        await self.down()
        if self._runner is not None:
            await self._runner.cleanup()
