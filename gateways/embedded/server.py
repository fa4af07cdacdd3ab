"""What every embedded server shares: one owner per state dir, start once, stop harmlessly."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Self

from gateways.embedded.child import ChildProcess, Escalation
from gateways.embedded.errors import EmbeddedServiceError
from gateways.embedded.statedir import StateDirLock


class EmbeddedServer(ABC):
    """Subclasses start their process in ``_start_locked`` and keep it in ``_child``."""

    title: ClassVar[str]
    """How errors name the server ("PostgreSQL", "nats-server")."""
    stop_signals: ClassVar[Escalation]

    def __init__(self, directory: Path) -> None:
        self.directory = directory.absolute()
        self._lock = StateDirLock(self.directory)
        self._child: ChildProcess | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The URL (with its credentials) of the running server."""
        if self._url is None:
            raise EmbeddedServiceError(f"{self.title} in {self.directory} is not running")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child else None

    async def start(self) -> str:
        """Start the server (once) under the state-dir lock and return its URL."""
        if self._url is not None:
            return self._url
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            self._url = await self._start_locked()
        except BaseException:
            self._lock.release()
            raise
        return self._url

    async def stop(self) -> None:
        """Shut down by ``stop_signals``; harmless when not running."""
        child, self._child, self._url = self._child, None, None
        self._forget()
        try:
            if child is not None:
                await child.stop(self.stop_signals)
        finally:
            self._lock.release()

    def _forget(self) -> None:  # noqa: B027 - a hook; most servers have nothing more
        """Drop whatever else describes the running server (stop calls it)."""

    @abstractmethod
    async def _start_locked(self) -> str: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()
