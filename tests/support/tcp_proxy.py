"""A loopback TCP proxy a test can cut: PostgreSQL "goes away" for one platform only.

Stopping the machine's shared PostgreSQL would break every other test running; pointing
one platform's pool at this proxy and cutting it makes the database unreachable to that
platform alone, with the very errors a real outage gives (connections reset, new ones
refused), and ``restore`` brings it back on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._marker: bytes | None = None
        self._cut_done = asyncio.Event()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    def url(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by this proxy's."""
        scheme, rest = database_url.split("://", 1)
        credentials, _, tail = rest.rpartition("@")
        path = tail.split("/", 1)[1] if "/" in tail else ""
        who = f"{credentials}@" if credentials else ""
        return f"{scheme}://{who}127.0.0.1:{self.port}/{path}"

    async def cut(self) -> None:
        """Refuse new connections and reset every open one."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._links.clear()
        self._cut_done.set()

    async def restore(self) -> None:
        """Serve again, on the same port (a no-op while serving)."""
        if self._server is None:
            await self.start()

    def cut_after_reply_to(self, marker: bytes) -> asyncio.Event:
        """Cut as soon as the server has answered a request whose bytes hold ``marker``.

        The answer itself is delivered first: a write that commits is acknowledged, and
        whatever the client does next finds the database gone.
        """
        self._marker = marker
        self._cut_done.clear()
        return self._cut_done

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._links.update((writer, up_writer))
        marked = asyncio.Event()
        await asyncio.gather(
            self._pipe(reader, up_writer, marked, upstream=True),
            self._pipe(up_reader, writer, marked, upstream=False),
            return_exceptions=True,
        )
        for end in (writer, up_writer):
            self._links.discard(end)
            with contextlib.suppress(Exception):
                end.transport.abort()

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        marked: asyncio.Event,
        *,
        upstream: bool,
    ) -> None:
        tail = b""
        while data := await reader.read(65536):
            marker = self._marker
            if upstream and marker is not None:
                if marker in tail + data:
                    marked.set()
                tail = data[-len(marker) :]
            writer.write(data)
            await writer.drain()
            # ReadyForQuery: the server has finished answering (and, outside a
            # transaction block, committed) the marked request.
            if not upstream and marked.is_set() and b"Z\x00\x00\x00\x05" in data:
                self._marker = None
                marked.clear()
                await self.cut()
                return
        writer.close()
