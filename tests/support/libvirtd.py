"""libvirtd for real-QEMU tests on a machine without systemd, through the platform's own code.

``running_libvirtd`` is ``gateways.embedded.libvirtd.EmbeddedLibvirtd`` (what ``scloud run``
uses) for synchronous fixtures: if ``qemu:///system`` already answers, that daemon is used and
left alone; otherwise ``virtlogd`` and ``libvirtd`` run as children of a thread of ours and
only those two are stopped afterwards. ``_pid``, ``_alive`` and ``_stop`` serve the migration
peer (tests/support/peer_libvirtd.py), whose daemons run in a mount namespace of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gateways.embedded.errors import EmbeddedServiceError
from gateways.embedded.libvirtd import SYSTEM_URI, EmbeddedLibvirtd

URI = SYSTEM_URI
T = TypeVar("T")


class LibvirtdUnavailable(RuntimeError):
    """libvirtd could not be made to answer; the message says why."""


def answers(uri: str = URI, timeout: float = 10.0) -> bool:
    try:
        done = subprocess.run(
            ["virsh", "-c", uri, "version"], capture_output=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop(pids: list[int], timeout: float = 10.0) -> None:
    """SIGTERM to each (they shut down in parallel), SIGKILL to any still there at the end."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class _LoopThread:
    """An event loop on a thread of its own, alive while the daemons are.

    The daemons get SIGTERM when the thread that forked them ends (their parent-death
    signal), so they are started and stopped from here, never from a short-lived loop.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="libvirtd", daemon=True)
        self._thread.start()

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


@contextlib.contextmanager
def running_libvirtd(run_dir: Path, *, timeout: float = 90.0) -> Iterator[str]:
    """``qemu:///system`` answering for the duration; yields the URI.

    The first start on a machine probes QEMU's capabilities (about 8 s); libvirt caches them.
    Daemon logs go to ``run_dir``.
    """
    libvirtd = EmbeddedLibvirtd(run_dir, start_timeout=timeout)
    thread = _LoopThread()
    try:
        try:
            thread.run(libvirtd.start())
        except EmbeddedServiceError as error:
            raise LibvirtdUnavailable(str(error)) from error
        try:
            yield libvirtd.uri
        finally:
            thread.run(libvirtd.stop())
    finally:
        thread.close()
