"""The libvirt compute driver: QEMU (TCG or KVM) in production, ``test:///default`` in tests.

libvirt-python blocks, so every call runs in a worker thread; one connection per driver.
"""

from __future__ import annotations

import asyncio
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TypeVar

import libvirt

from hostd.drivers.compute.domain_xml import domain_xml
from hostd.drivers.compute.port import (
    ConsoleAddress,
    DriverError,
    InstanceSpec,
    MigrationTarget,
    PowerState,
    check_growth,
)

T = TypeVar("T")

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.RUNNING,  # shutting down, still running
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.STOPPED,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.PAUSED,
}
INSTANCE_PREFIX = "i-"
_MOVE = (
    libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    | libvirt.VIR_MIGRATE_NON_SHARED_INC
)
"""Peer to peer (this libvirtd dials the target's), defined there and gone here, with the
disk's top layer copied into the overlay the target prepared on the same base image (which
every host's image pool holds): libvirt finds that disk there and does not make one."""


def _quiet(_context: object, _error: object) -> None:
    """libvirt prints every error to stderr by default; ours travel as exceptions."""


libvirt.registerErrorHandler(_quiet, None)


class LibvirtCompute:
    def __init__(
        self,
        uri: str = "qemu:///system",
        *,
        domain_type: str = "qemu",
        graceful_stop_seconds: float = 20.0,
        peer_uri: str = "qemu+tcp://{hostname}/system",
    ) -> None:
        """``peer_uri`` is the target of a migration, ``{hostname}`` filled in."""
        self.uri = uri
        self.domain_type = domain_type
        self.graceful_stop_seconds = graceful_stop_seconds
        self.peer_uri = peer_uri
        self._conn: libvirt.virConnect | None = None
        self._lock = asyncio.Lock()

    async def _call(self, work: Callable[[libvirt.virConnect], T]) -> T:
        # One call at a time per connection: libvirt's test driver and our check-then-act
        # sequences (look up, then start) must not interleave.
        async with self._lock:
            return await asyncio.to_thread(self._run, work)

    def _run(self, work: Callable[[libvirt.virConnect], T]) -> T:
        if self._conn is None:
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as error:
                raise DriverError(f"cannot reach {self.uri}: {error}") from error
        try:
            return work(self._conn)
        except libvirt.libvirtError as error:
            raise DriverError(str(error.get_error_message() or error)) from error

    @staticmethod
    def _find(conn: libvirt.virConnect, instance_id: str) -> libvirt.virDomain | None:
        try:
            return conn.lookupByName(instance_id)
        except libvirt.libvirtError as error:
            if error.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _domain(self, conn: libvirt.virConnect, instance_id: str) -> libvirt.virDomain:
        domain = self._find(conn, instance_id)
        if domain is None:
            raise DriverError(f"{instance_id} is not defined on this host")
        return domain

    async def define(self, spec: InstanceSpec) -> None:
        xml = domain_xml(spec, domain_type=self.domain_type)

        def work(conn: libvirt.virConnect) -> None:
            # Defining again replaces the persistent definition; a running guest picks it
            # up at its next start. Either way a repeat is harmless.
            conn.defineXML(xml)

        await self._call(work)

    async def start(self, instance_id: str) -> None:
        def work(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, instance_id)
            if not domain.isActive():
                domain.create()

        await self._call(work)

    async def stop(self, instance_id: str, *, force: bool = False) -> None:
        def request(conn: libvirt.virConnect) -> bool:
            domain = self._domain(conn, instance_id)
            if not domain.isActive():
                return True
            if force:
                domain.destroy()
                return True
            domain.shutdown()
            return not domain.isActive()

        if await self._call(request):
            return
        deadline = time.monotonic() + self.graceful_stop_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            if await self.state(instance_id) != PowerState.RUNNING:
                return
        # The guest ignored ACPI: pull the plug, as every cloud does after a grace period.
        await self.stop(instance_id, force=True)

    async def reboot(self, instance_id: str, *, hard: bool = False) -> None:
        def work(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, instance_id)
            if not domain.isActive():
                raise DriverError(f"{instance_id} is not running")
            if hard:
                domain.reset(0)
            else:
                domain.reboot(libvirt.VIR_DOMAIN_REBOOT_DEFAULT)

        await self._call(work)

    async def undefine(self, instance_id: str) -> None:
        def work(conn: libvirt.virConnect) -> None:
            domain = self._find(conn, instance_id)
            if domain is None:
                return
            if domain.isActive():
                domain.destroy()
            flags = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            domain.undefineFlags(flags)

        await self._call(work)

    async def state(self, instance_id: str) -> PowerState:
        def work(conn: libvirt.virConnect) -> PowerState:
            domain = self._find(conn, instance_id)
            if domain is None:
                return PowerState.ABSENT
            return _STATES.get(domain.state()[0], PowerState.CRASHED)

        return await self._call(work)

    async def observed(self) -> dict[str, PowerState]:
        def work(conn: libvirt.virConnect) -> dict[str, PowerState]:
            return {
                domain.name(): _STATES.get(domain.state()[0], PowerState.CRASHED)
                for domain in conn.listAllDomains()
                if domain.name().startswith(INSTANCE_PREFIX)
            }

        return await self._call(work)

    async def console(self, instance_id: str) -> ConsoleAddress | None:
        def work(conn: libvirt.virConnect) -> ConsoleAddress | None:
            domain = self._domain(conn, instance_id)
            if not domain.isActive():
                return None
            # libvirt's own description of the domain, not outside input.
            described = ET.fromstring(domain.XMLDesc(0))  # noqa: S314
            graphics = described.find("./devices/graphics[@type='vnc']")
            if graphics is None or int(graphics.get("port", "-1")) < 0:
                return None
            return ConsoleAddress(
                graphics.get("listen", "127.0.0.1"), int(graphics.get("port", "0"))
            )

        return await self._call(work)

    async def migrate(self, instance_id: str, target: MigrationTarget, *, live: bool) -> None:
        peer = self.peer_uri.format(hostname=target.hostname)

        def work(conn: libvirt.virConnect) -> None:
            domain = self._find(conn, instance_id)
            if domain is None:
                if _defined_at(peer, instance_id):
                    return  # moved already: a repeat of the same migration
                raise DriverError(f"{instance_id} is not defined on this host")
            if live:
                if not domain.isActive():
                    raise DriverError(f"{instance_id} is not running; live migration needs it")
                domain.migrateToURI3(peer, {}, _MOVE | libvirt.VIR_MIGRATE_LIVE)
                return
            if domain.isActive():
                raise DriverError(f"{instance_id} is running; cold migration needs it stopped")
            # Offline migration moves the definition but no local disk. Started paused, the
            # guest runs not one instruction: it is migrated with its disk, stays paused
            # there and is powered off, so it arrives as stopped as it left.
            domain.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED)
            try:
                domain.migrateToURI3(peer, {}, _MOVE | libvirt.VIR_MIGRATE_PAUSED)
            except libvirt.libvirtError:
                domain.destroy()
                raise
            _power_off_at(peer, instance_id)

        await self._call(work)

    async def set_password(self, instance_id: str, user: str, password_hash: str) -> None:
        def work(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, instance_id)
            if not domain.isActive():
                raise DriverError(f"{instance_id} is not running: its guest agent cannot answer")
            # ENCRYPTED: the guest agent hands the hash to chpasswd -e; no plaintext exists.
            domain.setUserPassword(user, password_hash, libvirt.VIR_DOMAIN_PASSWORD_ENCRYPTED)

        await self._call(work)

    async def resize(self, instance_id: str, *, vcpus: int, memory_mb: int) -> None:
        def work(conn: libvirt.virConnect) -> None:
            domain = self._running(conn, instance_id)
            have = _live_size(domain)
            if (vcpus, memory_mb) == have:
                return
            live = libvirt.VIR_DOMAIN_AFFECT_LIVE
            room = (domain.vcpusFlags(live | libvirt.VIR_DOMAIN_VCPU_MAXIMUM), _max_memory(domain))
            check_growth(instance_id, have, (vcpus, memory_mb), room)
            # Both live and in the definition, so a reboot by the guest keeps them; each part
            # is checked against what is there, so a repeated command plugs in only the rest.
            both = live | libvirt.VIR_DOMAIN_AFFECT_CONFIG
            if memory_mb > have[1]:
                domain.attachDeviceFlags(_dimm(memory_mb - have[1]), both)
            if vcpus > have[0]:
                domain.setVcpusFlags(vcpus, both)

        await self._call(work)

    async def size(self, instance_id: str) -> tuple[int, int]:
        def work(conn: libvirt.virConnect) -> tuple[int, int]:
            return _live_size(self._running(conn, instance_id))

        return await self._call(work)

    def _running(self, conn: libvirt.virConnect, instance_id: str) -> libvirt.virDomain:
        domain = self._domain(conn, instance_id)
        if not domain.isActive():
            raise DriverError(f"{instance_id} is not running: nothing is plugged in live")
        return domain

    async def close(self) -> None:
        def work(conn: libvirt.virConnect) -> None:
            conn.close()

        if self._conn is not None:
            await self._call(work)
            self._conn = None


def _defined_at(uri: str, instance_id: str) -> bool:
    try:
        peer = libvirt.open(uri)
    except libvirt.libvirtError:
        return False
    try:
        return instance_id in {domain.name() for domain in peer.listAllDomains()}
    finally:
        peer.close()


def _power_off_at(uri: str, instance_id: str) -> None:
    peer = libvirt.open(uri)
    try:
        domain = peer.lookupByName(instance_id)
        if domain.isActive():
            domain.destroy()
    finally:
        peer.close()


def _live_size(domain: libvirt.virDomain) -> tuple[int, int]:
    """(vcpus, MiB): the memory counts the DIMMs plugged in (the domain's total)."""
    vcpus = domain.vcpusFlags(libvirt.VIR_DOMAIN_AFFECT_LIVE)
    return vcpus, int(domain.info()[1]) // 1024


def _max_memory(domain: libvirt.virDomain) -> int:
    """The MiB hot-added DIMMs may reach; the memory it has when defined without room."""
    # libvirt's own description of the domain, not outside input.
    described = ET.fromstring(domain.XMLDesc(0))  # noqa: S314
    maximum = described.find("maxMemory")
    if maximum is None or not maximum.text:
        return int(domain.info()[1]) // 1024
    scale = {"KiB": 1, "MiB": 1024, "GiB": 1024 * 1024}[maximum.get("unit", "KiB")]
    return int(maximum.text) * scale // 1024


def _dimm(size_mb: int) -> str:
    return (
        "<memory model='dimm'><target>"
        f"<size unit='MiB'>{size_mb}</size><node>0</node>"
        "</target></memory>"
    )
