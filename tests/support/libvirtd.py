"""libvirtd for real-QEMU tests on a machine without systemd: started by hand, stopped by pid.

If ``qemu:///system`` already answers, that daemon is used and left alone. Otherwise
``virtlogd`` and ``libvirtd`` are started as daemons with pid files of our own, and only
those two pids are stopped afterwards.
"""

from __future__ import annotations

import contextlib
import grp
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

URI = "qemu:///system"
DAEMONS = ("virtlogd", "libvirtd", "virsh", "qemu-system-x86_64", "qemu-img")


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


def _open_kvm() -> None:
    """Without this every libvirt call re-probes QEMU and takes 30 to 40 s (INFRA-NOTES)."""
    kvm = Path("/dev/kvm")
    if not kvm.exists():
        return
    try:
        os.chown(kvm, -1, grp.getgrnam("kvm").gr_gid)
    except KeyError:
        return  # no kvm group: libvirt runs QEMU as root or the package is missing
    kvm.chmod(0o660)


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


def _start(name: str, pidfile: Path, log: Path) -> int:
    env = {**os.environ, "LIBVIRT_LOG_OUTPUTS": f"3:file:{log}"}
    done = subprocess.run(
        [name, "-d", "-p", str(pidfile)], capture_output=True, text=True, env=env, check=False
    )
    if done.returncode != 0:
        raise LibvirtdUnavailable(f"{name} -d failed ({done.returncode}): {done.stderr.strip()}")
    deadline = time.monotonic() + 10
    while (pid := _pid(pidfile)) is None:
        if time.monotonic() > deadline:
            raise LibvirtdUnavailable(f"{name} wrote no pid file {pidfile}; see {log}")
        time.sleep(0.05)
    return pid


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


def _tail(log: Path, lines: int = 15) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running_libvirtd(run_dir: Path, *, timeout: float = 90.0) -> Iterator[str]:
    """``qemu:///system`` answering for the duration; yields the URI.

    The first start on a machine probes QEMU's capabilities (about 8 s); libvirt caches them.
    """
    if answers():
        yield URI
        return
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        raise LibvirtdUnavailable(
            f"{', '.join(missing)} not found: make test installs the Debian packages "
            "(libvirt-daemon-system, libvirt-clients, qemu-system-x86, qemu-utils)"
        )
    run_dir.mkdir(parents=True, exist_ok=True)
    _open_kvm()
    started: dict[str, int] = {}
    problems: list[str] = []
    try:
        for name in ("virtlogd", "libvirtd"):
            try:
                started[name] = _start(name, run_dir / f"{name}.pid", run_dir / f"{name}.log")
            except LibvirtdUnavailable as error:
                # Another test run may be starting its own at this moment: wait and see.
                problems.append(str(error))
        log = run_dir / "libvirtd.log"
        began = time.monotonic()
        while not answers():
            # Ours, alive: it may be probing QEMU. None of ours: a short grace for another's.
            ours = "libvirtd" in started and _alive(started["libvirtd"])
            if time.monotonic() - began > (timeout if ours else 10.0):
                problems.append(f"virsh -c {URI} version does not answer; libvirtd log ({log}):")
                raise LibvirtdUnavailable("\n".join([*problems, _tail(log)]))
            time.sleep(0.2)
        yield URI
    finally:
        _stop(list(started.values()))
