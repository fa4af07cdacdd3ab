"""The system libvirtd (``qemu:///system``), started here when nothing answers on it.

Without systemd nothing starts libvirtd. Then ``virtlogd`` and ``libvirtd`` run as our
children, die with us like the other embedded servers, and only those two are stopped on the
way out. A libvirtd that answers, or one that is already starting, is used and left alone.
"""

from __future__ import annotations

import asyncio
import functools
import grp
import logging
import os
import shutil
import signal
from pathlib import Path

from gateways.embedded.child import ChildProcess
from gateways.embedded.errors import BinaryNotFound, EmbeddedServiceError, ServiceStartFailed
from gateways.embedded.probe import libvirt_answers, unix_socket_answers
from gateways.embedded.server import EmbeddedServer
from gateways.embedded.service_user import running_as_root

SYSTEM_URI = "qemu:///system"
LOCAL_SYSTEM_URIS = frozenset({SYSTEM_URI, "qemu+unix:///system"})
"""The URIs that name this machine's system libvirtd, the one we may start."""
REQUIRED_BINARIES = ("virtlogd", "libvirtd", "virsh", "qemu-system-x86_64", "qemu-img")
PACKAGES = "libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils"
VIRTLOGD_SOCKET = Path("/run/libvirt/virtlogd-sock")
_STOP = ((signal.SIGTERM, 30.0), (signal.SIGKILL, 5.0))
_POLL_SECONDS = 0.2
_log = logging.getLogger(__name__)


def find_binaries() -> dict[str, str]:
    """Each of REQUIRED_BINARIES by name, from PATH or the sbin directories."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"])
    found = {name: shutil.which(name, path=path) for name in REQUIRED_BINARIES}
    missing = [name for name, where in found.items() if where is None]
    if missing:
        raise BinaryNotFound(
            f"{', '.join(missing)} not found: apt-get install {PACKAGES} (make run installs them)"
        )
    return {name: where for name, where in found.items() if where is not None}


def open_kvm() -> None:
    """``/dev/kvm`` for group kvm: otherwise every libvirt call re-probes QEMU (30 to 40 s)."""
    kvm = Path("/dev/kvm")
    try:
        gid = grp.getgrnam("kvm").gr_gid
        status = kvm.stat()
    except (KeyError, OSError):
        return  # no KVM here, or no kvm group: libvirt then runs QEMU as root
    if status.st_gid != gid or status.st_mode & 0o660 != 0o660:
        os.chown(kvm, -1, gid)
        kvm.chmod(0o660)
        _log.info("gave /dev/kvm to group kvm, mode 0660")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def running_here(name: str) -> int | None:
    """The pid of a live process called ``name`` in our mount namespace, if there is one.

    Only a daemon in our mount namespace owns our ``/run/libvirt``; one in another (a
    migration peer's) does not count.
    """
    ours = os.readlink("/proc/self/ns/mnt")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != name:
                continue
            if os.readlink(entry / "ns" / "mnt") == ours and _alive(int(entry.name)):
                return int(entry.name)
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return None


def _pid_file_held(failure: ServiceStartFailed) -> bool:
    return "failed to acquire pid file" in failure.log_tail.lower()


class EmbeddedLibvirtd(EmbeddedServer):
    """``qemu:///system`` answering while this runs; its logs in ``directory``.

    ``pid`` (and ``virtlogd_pid``) are None when the daemon was already there: not ours.
    """

    title = "libvirtd"
    stop_signals = _STOP

    def __init__(
        self, directory: Path, *, uri: str = SYSTEM_URI, start_timeout: float = 90.0
    ) -> None:
        if uri not in LOCAL_SYSTEM_URIS:
            raise EmbeddedServiceError(f"{uri} is not this machine's system libvirtd")
        super().__init__(directory)
        self.uri = uri
        self._start_timeout = start_timeout
        self._virtlogd: ChildProcess | None = None
        self._virsh = "virsh"

    @property
    def virtlogd_pid(self) -> int | None:
        return self._virtlogd.pid if self._virtlogd else None

    async def _start_locked(self) -> str:
        if await libvirt_answers(self.uri):
            _log.info("using the libvirtd that answers on %s", self.uri)
            return self.uri
        if not running_as_root():
            raise EmbeddedServiceError(
                f"{self.uri} does not answer and only root can start the system libvirtd: "
                "start it, run as root, or set SCLOUD_HOST_DRIVER=simulated"
            )
        binaries = find_binaries()
        self._virsh = binaries["virsh"]
        if (other := running_here("libvirtd")) is not None:
            await self._wait_for_other(other)
            return self.uri
        open_kvm()
        try:
            self._virtlogd = await self._start_virtlogd(binaries["virtlogd"])
            self._child = await self._start_libvirtd(binaries["libvirtd"])
        except BaseException:
            await self._stop_virtlogd()
            raise
        return self.uri

    async def _start_virtlogd(self, binary: str) -> ChildProcess | None:
        # QEMU's console output goes through virtlogd; libvirtd does not start it when root.
        if (other := running_here("virtlogd")) is not None:
            _log.info("using virtlogd %d, already running", other)
            return None
        child = await self._spawn("virtlogd", binary)
        try:
            async with child.startup_deadline(self._start_timeout):
                await child.wait_until(functools.partial(unix_socket_answers, VIRTLOGD_SOCKET))
        except ServiceStartFailed as failure:
            await child.stop(_STOP)
            if not _pid_file_held(failure):
                raise
            _log.info("virtlogd started meanwhile by someone else: using that one")
            return None
        except BaseException:
            await child.stop(_STOP)
            raise
        return child

    async def _start_libvirtd(self, binary: str) -> ChildProcess | None:
        child = await self._spawn("libvirtd", binary)
        answers = functools.partial(libvirt_answers, self.uri, virsh=self._virsh)
        try:
            async with child.startup_deadline(self._start_timeout):
                await child.wait_until(answers)
        except ServiceStartFailed as failure:
            await child.stop(_STOP)
            if not _pid_file_held(failure) or (other := running_here("libvirtd")) is None:
                raise
            await self._wait_for_other(other)
            return None
        except BaseException:
            await child.stop(_STOP)
            raise
        _log.info("libvirtd %d on %s, logs in %s", child.pid, self.uri, self.directory)
        return child

    async def _spawn(self, name: str, binary: str) -> ChildProcess:
        # No -p: with its default pid file a daemon refuses to start while another one runs,
        # before it touches a socket. With a pid file of its own it would unlink and rebind
        # the running daemon's sockets (and, failing later, delete them), leaving that deaf.
        log = self.directory / f"{name}.log"
        return await ChildProcess.spawn(name, [binary], log=log, death_signal=signal.SIGTERM)

    async def _wait_for_other(self, pid: int) -> None:
        """Another libvirtd is starting (probing QEMU): wait for its answer, never replace it."""
        _log.info("libvirtd %d is already running: waiting for it to answer", pid)
        try:
            async with asyncio.timeout(self._start_timeout):
                while not await libvirt_answers(self.uri, virsh=self._virsh):
                    if not _alive(pid):
                        raise EmbeddedServiceError(f"libvirtd {pid} ended without answering")
                    await asyncio.sleep(_POLL_SECONDS)
        except TimeoutError:
            message = f"libvirtd {pid} (not ours) gave no answer on {self.uri} within "
            raise EmbeddedServiceError(f"{message}{self._start_timeout:g} s") from None

    async def _stop_virtlogd(self) -> None:
        virtlogd, self._virtlogd = self._virtlogd, None
        if virtlogd is not None:
            await virtlogd.stop(_STOP)

    async def stop(self) -> None:
        """Stop libvirtd, then virtlogd, if we started them; anyone else's stay."""
        libvirtd, self._child = self._child, None
        try:
            if libvirtd is not None:
                await libvirtd.stop(_STOP)
            await self._stop_virtlogd()
        finally:
            await super().stop()  # forgets the URI and releases the state dir
