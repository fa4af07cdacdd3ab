"""Applying one host command: "ensure this desired state" through the storage and compute ports.

A plain function of (command, dependencies): every step is idempotent, so applying a
command twice (a redelivery, a repeat) ends where applying it once does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import msgspec

from gateways.bus.hostwire import (
    IMAGE_ACTIONS,
    Action,
    Console,
    GuestSpec,
    HostCommand,
    HostOutcome,
    ImageReport,
)
from gateways.bus.hostwire import PowerState as WireState
from hostd.drivers.compute.port import (
    ComputeDriver,
    DriverError,
    InstanceSpec,
    MigrationTarget,
    Nic,
    PowerState,
)
from hostd.storage.port import ImageFile, ImageSource, RootDisk, StorageDriver, StorageError


@dataclass(frozen=True)
class HostLayout:
    """Where a host keeps its per-instance files (disks are the storage driver's)."""

    state_dir: Path

    @property
    def serial_dir(self) -> Path:
        return self.state_dir / "serial"

    def serial_log(self, instance_id: str) -> Path:
        return self.serial_dir / f"{instance_id}.log"

    def create(self) -> None:
        self.serial_dir.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class Host:
    """What applying a command needs: the host's name, its drivers and its layout."""

    host_id: str
    compute: ComputeDriver
    storage: StorageDriver
    layout: HostLayout


def tap_name(instance_id: str, index: int) -> str:
    """The tap of an instance's ``index``-th NIC: 15 characters at most (IFNAMSIZ - 1).

    Derived from the instance id alone, so the network driver names the same device.
    """
    if not 0 <= index < 256:
        raise ValueError(f"NIC index {index} out of range")
    digest = hashlib.blake2b(instance_id.encode(), digest_size=5).hexdigest()
    return f"tap{digest}{index:02x}"


def instance_spec(
    instance_id: str, guest: GuestSpec, disk: RootDisk, layout: HostLayout
) -> InstanceSpec:
    return InstanceSpec(
        instance_id=instance_id,
        vcpus=guest.vcpus,
        memory_mb=guest.memory_mb,
        disk_path=disk.path,
        disk_format=disk.format,
        kernel=guest.kernel,
        initrd=guest.initrd,
        cmdline=guest.cmdline,
        nics=tuple(Nic(mac, tap_name(instance_id, i)) for i, mac in enumerate(guest.macs)),
        gpus=guest.gpus,
        serial_log=str(layout.serial_log(instance_id)),
        max_vcpus=guest.max_vcpus,
        max_memory_mb=guest.max_memory_mb,
    )


async def observe(host: Host, instance_id: str) -> WireState:
    """The instance's power state as the wire names it; CRASHED when the hypervisor will not say."""
    try:
        return WireState((await host.compute.state(instance_id)).value)
    except DriverError:
        return WireState.CRASHED


async def boot_files(host: Host, guest: GuestSpec) -> GuestSpec:
    """The spec with its kernel and initrd as real files of this host's image pools; a
    path outside them is refused (StorageError), whoever sent the step."""
    kernel = None if guest.kernel is None else await host.storage.image_file(guest.kernel)
    initrd = None if guest.initrd is None else await host.storage.image_file(guest.initrd)
    return msgspec.structs.replace(guest, kernel=kernel, initrd=initrd)


async def enact(host: Host, command: HostCommand) -> None:
    """Make the command's desired state hold; raises DriverError or StorageError with the cause."""
    instance_id = command.instance_id
    match command.action:
        case Action.ENSURE_RUNNING:
            if command.spec is None:
                raise DriverError("ensure_running needs a guest spec")
            guest = await boot_files(host, command.spec)
            disk = await host.storage.ensure_root_disk(
                instance_id,
                image_location=guest.image_location,
                image_format=guest.image_format,
                size_gb=guest.disk_gb,
            )
            await host.compute.define(instance_spec(instance_id, guest, disk, host.layout))
            await host.compute.start(instance_id)
        case Action.ENSURE_STOPPED:
            await host.compute.stop(instance_id, force=command.force)
        case Action.REBOOT:
            await host.compute.reboot(instance_id, hard=command.hard)
        case Action.ENSURE_ABSENT:
            await host.compute.undefine(instance_id)
            await host.storage.delete_root_disk(instance_id)
            host.layout.serial_log(instance_id).unlink(missing_ok=True)
        case Action.PREPARE_MIGRATION:
            if command.spec is None:
                raise DriverError("prepare_migration needs a guest spec")
            await host.storage.ensure_root_disk(
                instance_id,
                image_location=command.spec.image_location,
                image_format=command.spec.image_format,
                size_gb=command.spec.disk_gb,
            )
        case Action.MIGRATE:
            await migrate(host, command)
        case Action.REINSTALL:
            await reinstall(host, command)
        case Action.RESIZE:
            if command.spec is None:
                raise DriverError("resize needs a guest spec")
            await host.compute.resize(
                instance_id, vcpus=command.spec.vcpus, memory_mb=command.spec.memory_mb
            )
        case Action.SET_PASSWORD:
            if command.password is None:
                raise DriverError("set_password needs a password hash")
            await host.compute.set_password(
                instance_id, command.password.user, command.password.hash
            )


async def migrate(host: Host, command: HostCommand) -> None:
    """Move the guest to the target host; a cold move of a running guest stops it first.

    The disk's copy is the target's now (libvirt copies the top layer over): this host's
    is removed once the guest is defined there.
    """
    order = command.migration
    if order is None:
        raise DriverError("migrate needs a migration order")
    instance_id = command.instance_id
    if not order.live and await host.compute.state(instance_id) == PowerState.RUNNING:
        await host.compute.stop(instance_id)
    target = MigrationTarget(order.target_host_id, order.target_hostname)
    await host.compute.migrate(instance_id, target, live=order.live)
    await host.storage.delete_root_disk(instance_id)
    host.layout.serial_log(instance_id).unlink(missing_ok=True)


async def reinstall(host: Host, command: HostCommand) -> None:
    """The root disk made afresh from the spec's image; started again if it ran before.

    The disk records the step that made it: the same step delivered again (its ack lost,
    even across a daemon restart) finds its disk made and only ensures the rest, instead
    of wiping what the guest wrote since.
    """
    if command.spec is None:
        raise DriverError("reinstall needs a guest spec")
    spec = await boot_files(host, command.spec)
    instance_id = command.instance_id
    made = await host.storage.root_disk(instance_id)
    if made is None or made.made_by != command.step_id:
        if await host.compute.state(instance_id) != PowerState.ABSENT:
            await host.compute.stop(instance_id)
        await host.storage.delete_root_disk(instance_id)
    disk = await host.storage.ensure_root_disk(
        instance_id,
        image_location=spec.image_location,
        image_format=spec.image_format,
        size_gb=spec.disk_gb,
        made_by=command.step_id,
    )
    await host.compute.define(instance_spec(instance_id, spec, disk, host.layout))
    if command.start:
        await host.compute.start(instance_id)


async def make_image(host: Host, command: HostCommand) -> ImageFile:
    """Import a source into the pool, or flatten the instance's disk there, as the image."""
    order = command.image
    if order is None:
        raise StorageError(f"{command.action} needs an image order")
    if command.action == Action.IMPORT_IMAGE:
        source = ImageSource(
            url=order.url,
            path=order.path,
            format=order.source_format,
            public_only=order.public_only,
            upload=order.upload,
            sha256=order.sha256,
        )
        return await host.storage.import_image(
            order.image_id, source=source, pool=order.pool_location
        )
    if await host.compute.state(command.instance_id) not in (PowerState.STOPPED, PowerState.ABSENT):
        raise StorageError(f"{command.instance_id} is not stopped: its disk is not exported")
    return await host.storage.export_image(
        command.instance_id, image_id=order.image_id, pool=order.pool_location
    )


async def apply_image(host: Host, command: HostCommand) -> HostOutcome:
    error: str | None = None
    report: ImageReport | None = None
    try:
        made = await make_image(host, command)
        report = ImageReport(
            location=made.location,
            size_bytes=made.size_bytes,
            virtual_size_bytes=made.virtual_size_bytes,
            sha256=made.sha256,
        )
    except (DriverError, StorageError) as failure:
        error = str(failure) or type(failure).__name__
    state = (
        WireState.ABSENT
        if command.action == Action.IMPORT_IMAGE
        else await observe(host, command.instance_id)
    )
    return outcome(host, command, state, error, image=report)


async def apply(host: Host, command: HostCommand) -> HostOutcome:
    """Enact the command and say how it went: ok, or the driver's cause, and the state seen."""
    if command.action in IMAGE_ACTIONS:
        return await apply_image(host, command)
    error: str | None = None
    try:
        await enact(host, command)
    except (DriverError, StorageError) as failure:
        error = str(failure) or type(failure).__name__
    state = await observe(host, command.instance_id)
    console = await console_of(host, command.instance_id) if state == WireState.RUNNING else None
    return outcome(host, command, state, error, console)


async def console_of(host: Host, instance_id: str) -> Console | None:
    """Where the running guest's VNC display listens; None when the driver cannot say."""
    try:
        address = await host.compute.console(instance_id)
    except DriverError:
        return None
    return None if address is None else Console(address.host, address.port)


def outcome(
    host: Host,
    command: HostCommand,
    state: WireState,
    error: str | None,
    console: Console | None = None,
    *,
    image: ImageReport | None = None,
) -> HostOutcome:
    return HostOutcome(
        step_id=command.step_id,
        host_id=host.host_id,
        instance_id=command.instance_id,
        action=command.action,
        ok=error is None,
        state=state,
        error=error,
        console=console,
        image_id=None if command.image is None else command.image.image_id,
        image=image,
    )
