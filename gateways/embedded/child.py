"""A server binary run as our child process, which cannot outlive us."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from gateways.embedded.errors import ServiceStartFailed

Escalation = Sequence[tuple[signal.Signals, float]]
"""Signals to send in turn, each with the seconds to wait for an exit before the next."""

_PR_SET_PDEATHSIG = 1
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account a child runs under when we are root."""

    uid: int
    gid: int


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 now; callers retry if it is taken before the server binds."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _arm_parent_death_signal(sig: signal.Signals) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def arm() -> None:
        # Runs in the forked child after the uid change, which would have cleared the setting.
        # The kernel signals the child when the thread that forked it exits: asyncio forks from
        # the event loop's thread, which lives as long as the loop does.
        prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:  # we died between fork and prctl: nobody would signal
            os._exit(1)

    return arm


class ChildProcess:
    """One server process: spawned detached from our terminal, stopped by signal escalation."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path, offset: int):
        self.name = name
        self._process = process
        self._log = log
        self._log_offset = offset

    @classmethod
    async def spawn(
        cls,
        name: str,
        argv: Sequence[str],
        *,
        log: Path,
        death_signal: signal.Signals,
        run_as: RunAs | None = None,
    ) -> ChildProcess:
        """Start ``argv`` with stdout and stderr appended to ``log``."""
        with log.open("ab") as out:
            offset = out.tell()
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                # Our own session, so a Ctrl-C at the terminal reaches us, not the server:
                # we decide how it shuts down.
                start_new_session=True,
                preexec_fn=_arm_parent_death_signal(death_signal),
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
        return cls(name, process, log, offset)

    @property
    def pid(self) -> int:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.returncode

    def log_tail(self, lines: int = 30) -> str:
        """The last lines this run wrote to its log."""
        try:
            with self._log.open("rb") as log:
                log.seek(self._log_offset)
                text = log.read().decode(errors="replace")
        except OSError as err:
            return f"(log unreadable: {err})"
        return "\n".join(text.splitlines()[-lines:])

    async def wait_until(self, ready: Callable[[], Awaitable[bool]]) -> None:
        """Poll ``ready`` until it is true; fail as soon as the process exits."""
        # Each probe races the exit: a probe can hang on whatever else holds the port.
        exited = asyncio.ensure_future(self._process.wait())
        try:
            while True:
                probe = asyncio.ensure_future(ready())
                await asyncio.wait({probe, exited}, return_when=asyncio.FIRST_COMPLETED)
                if exited.done():
                    probe.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await probe
                    reason = f"exited with status {self.returncode}"
                    raise ServiceStartFailed(self.name, reason, self.log_tail())
                if probe.result():
                    return
                await asyncio.sleep(_POLL_SECONDS)
        finally:
            exited.cancel()

    @contextlib.asynccontextmanager
    async def startup_deadline(self, seconds: float) -> AsyncIterator[None]:
        """Bound the body to ``seconds``, turning a time-out into a failure with the log."""
        try:
            async with asyncio.timeout(seconds):
                yield
        except TimeoutError:
            reason = f"no answer within {seconds:g} s"
            raise ServiceStartFailed(self.name, reason, self.log_tail()) from None

    async def stop(self, escalation: Escalation) -> int:
        """Send each signal in turn until the process exits; SIGKILL as the last resort."""
        for sig, grace in escalation:
            if self.returncode is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                self._process.send_signal(sig)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), grace)
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        return await self._process.wait()


async def run_to_completion(name: str, argv: Sequence[str], run_as: RunAs | None) -> None:
    """Run a one-shot tool (initdb); raise with its output if it fails."""
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        user=run_as.uid if run_as else None,
        group=run_as.gid if run_as else None,
        extra_groups=[] if run_as else None,
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        reason = f"exited with status {process.returncode}"
        raise ServiceStartFailed(name, reason, output.decode(errors="replace"))
