"""The compute driver port: what a host daemon needs from a hypervisor.

Every call states a desired state and is idempotent: ensuring what already holds is a
no-op, so a redelivered command is harmless.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

import msgspec


class PowerState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    CRASHED = "crashed"
    ABSENT = "absent"


class Nic(msgspec.Struct, frozen=True):
    mac: str
    tap: str
    """A tap device the network driver made (libvirt ``<interface type='ethernet'>``)."""


class InstanceSpec(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    vcpus: int
    memory_mb: int
    disk_path: str
    """The root disk (qcow2 file or rbd:pool/image) the storage driver prepared."""
    disk_format: str = "qcow2"
    kernel: str | None = None
    """Direct kernel boot (tiny test guests); None boots the disk."""
    initrd: str | None = None
    cmdline: str | None = None
    nics: tuple[Nic, ...] = ()
    gpus: tuple[str, ...] = ()
    """PCI addresses passed through (``<hostdev>``)."""
    serial_log: str | None = None
    """File the guest's serial console is written to."""
    vnc: bool = True
    max_vcpus: int | None = None
    max_memory_mb: int | None = None
    """Room to grow live: vCPUs that can be plugged in, memory DIMMs can reach (None: none)."""


class ConsoleAddress(msgspec.Struct, frozen=True):
    host: str
    port: int


class MigrationTarget(msgspec.Struct, frozen=True):
    host_id: str
    hostname: str
    """The peer hypervisor's name: what libvirt dials (``qemu+tcp://<hostname>/system``)."""


class DriverError(Exception):
    """The hypervisor refused; the message is the cause reported in the outcome event."""


def check_growth(
    instance_id: str, have: tuple[int, int], want: tuple[int, int], room: tuple[int, int]
) -> None:
    """A live resize only grows, within the room the guest was defined with (vcpus, MiB)."""
    for what, now, wanted, most in zip(("vCPUs", "MiB of memory"), have, want, room, strict=True):
        if wanted < now:
            raise DriverError(f"{instance_id}: {now} {what} cannot shrink to {wanted} live")
        if wanted > most:
            raise DriverError(
                f"{instance_id}: {wanted} {what} is past the {most} it can grow to live"
            )


class ComputeDriver(Protocol):
    async def define(self, spec: InstanceSpec) -> None:
        """Make the domain exist with this spec (redefining a stopped one is allowed)."""
        ...

    async def start(self, instance_id: str) -> None:
        """Running afterwards; already running is fine."""
        ...

    async def stop(self, instance_id: str, *, force: bool = False) -> None:
        """Stopped afterwards (ACPI shutdown, or destroy when ``force``)."""
        ...

    async def reboot(self, instance_id: str, *, hard: bool = False) -> None: ...

    async def undefine(self, instance_id: str) -> None:
        """Gone afterwards (stopped first if needed); absent already is fine."""
        ...

    async def state(self, instance_id: str) -> PowerState: ...

    async def observed(self) -> dict[str, PowerState]:
        """Every domain this driver manages and its state: the drift report."""
        ...

    async def console(self, instance_id: str) -> ConsoleAddress | None: ...

    async def migrate(self, instance_id: str, target: MigrationTarget, *, live: bool) -> None:
        """Defined on ``target`` afterwards and absent here; a guest already there is fine.

        Live: it must run, and keeps running (memory and its disk's top layer copied into
        the disk the target prepared; see ``Action.PREPARE_MIGRATION``).
        Cold: it must be stopped, and stays stopped. A migration that fails leaves the
        guest here as it was.
        """
        ...

    async def set_password(self, instance_id: str, user: str, password_hash: str) -> None:
        """Set ``user``'s password in the running guest from a crypt(3) hash."""
        ...

    async def resize(self, instance_id: str, *, vcpus: int, memory_mb: int) -> None:
        """The running guest has ``vcpus`` and ``memory_mb`` afterwards, plugged in live;
        already so is fine. DriverError (the guest keeps its size) when it is not running,
        would shrink, or would grow past the room it was defined with."""
        ...

    async def size(self, instance_id: str) -> tuple[int, int]:
        """The running guest's (vcpus, memory_mb) as its hypervisor sees it now."""
        ...
