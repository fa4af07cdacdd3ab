"""A state directory serves one live owner at a time; a dead owner's server is ended."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
from pathlib import Path

from gateways.embedded.child import Escalation
from gateways.embedded.errors import EmbeddedServiceError, StateDirInUse

_POLL_SECONDS = 0.05


class StateDirLock:
    """An exclusive ``flock`` on ``directory/.lock``, held while our server runs.

    The kernel drops the lock when its holder dies, however it dies, so holding it proves
    that any server still running on the directory was left behind by a dead owner.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StateDirInUse naming the live holder."""
        if self._fd is not None:
            return
        # os.open makes the descriptor non-inheritable, so our servers never hold the lock.
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            raise StateDirInUse(self.directory, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock; harmless when not held."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def read_or_create_secret(path: Path) -> str:
    """The secret stored at ``path``, created (mode 0600) on first use."""
    with contextlib.suppress(FileNotFoundError):
        return path.read_text().strip()
    secret = secrets.token_urlsafe(24)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secret + "\n")
        out.flush()
        os.fsync(out.fileno())
    return secret


def _read_pid(pid_file: Path) -> int | None:
    try:
        first_line = pid_file.read_text().split("\n", 1)[0]
        return int(first_line.strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the parenthesised command name, which may itself hold spaces.
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _runs_with(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return marker.encode() in cmdline and _alive(pid)


async def _exited(pid: int) -> None:
    # Not our child, so nothing to wait() on: poll, as a zombie also counts as exited.
    while _alive(pid):  # noqa: ASYNC110
        await asyncio.sleep(_POLL_SECONDS)


async def end_orphan(pid_file: Path, marker: str, escalation: Escalation) -> int | None:
    """End the process named in ``pid_file`` if its command line holds ``marker``.

    Call it only while holding the StateDirLock: then the process is an orphan. The marker
    (the data directory or config path) guards against a pid reused by an unrelated process.
    Returns the pid that was ended, if any.
    """
    pid = _read_pid(pid_file)
    if pid is None or pid == os.getpid() or not _runs_with(pid, marker):
        return None
    for sig, grace in escalation:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await _exited(pid)
            return pid
    message = f"orphaned server {pid} on {marker} survived {len(escalation)} signals"
    raise EmbeddedServiceError(message)
