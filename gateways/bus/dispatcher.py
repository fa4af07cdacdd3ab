"""Instance steps become commands to their hosts, published once per step.

The dispatcher follows the store like a projection: it publishes a step's command (the
step id as ``Nats-Msg-Id``, so a re-publish after a crash is dropped by JetStream) and
only then moves its checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.api import Header

from domain.compute.image import IMPORTING, Image
from domain.compute.instance import (
    DELETING,
    MIGRATING,
    PREPARING,
    REBOOTING,
    REINSTALLING,
    RESETTING_PASSWORD,
    RESIZING,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    Instance,
)
from domain.errors import NotFound
from domain.inventory.host import Host
from domain.inventory.image_pool import ImagePool
from gateways.bus import hostwire
from gateways.bus.hostwire import (
    Action,
    GuestPassword,
    GuestSpec,
    HostCommand,
    ImageOrder,
    MigrationOrder,
)
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.repository import Repository
from gateways.waiting import wait_any
from projections.checkpoints import Checkpoints

log = logging.getLogger(__name__)

_INSTANCE = "domain.compute.instance:Instance."
_EVACUATED = f"{_INSTANCE}Evacuated"
_MIGRATED = f"{_INSTANCE}Migrated"
_UNMIGRATED = f"{_INSTANCE}MigrationFailed"
_SETTLED = f"{_INSTANCE}MigrationSettled"
_DRIFT = f"{_INSTANCE}DriftDetected"
_UNKNOWN_GUEST = "domain.inventory.host:Host.UnknownGuestFound"
_IMAGE_STEP = "domain.compute.image:Image.ImportStarted"
_STEPS = {
    f"{_INSTANCE}Scheduled",
    f"{_INSTANCE}StepStarted",
    f"{_INSTANCE}Purged",
    f"{_INSTANCE}MigrationStarted",
    f"{_INSTANCE}MigrationPrepared",
    f"{_INSTANCE}ReinstallStarted",
    f"{_INSTANCE}PasswordResetStarted",
    f"{_INSTANCE}ResizeStarted",
    f"{_INSTANCE}HotResizeRefused",
    _EVACUATED,
}
_ACTIONS = {
    STARTING: Action.ENSURE_RUNNING,
    STOPPING: Action.ENSURE_STOPPED,
    REBOOTING: Action.REBOOT,
    DELETING: Action.ENSURE_STOPPED,
    MIGRATING: Action.MIGRATE,
    REINSTALLING: Action.REINSTALL,
    RESETTING_PASSWORD: Action.SET_PASSWORD,
    RESIZING: Action.RESIZE,
}
_WITH_SPEC = frozenset(
    {Action.ENSURE_RUNNING, Action.REINSTALL, Action.PREPARE_MIGRATION, Action.RESIZE}
)


class HostCommandDispatcher:
    name = "host_command_dispatcher"

    def __init__(
        self,
        repository: Repository,
        js: JetStreamContext,
        schema: str,
        ensure_streams: Callable[[], Awaitable[None]],
    ) -> None:
        """``ensure_streams`` makes the host streams exist, configured as the hosts expect."""
        self.ensure_streams = ensure_streams
        self.repository = repository
        self.store = repository.store
        self.js = js
        self.checkpoints = Checkpoints(schema)

    async def command_for(self, event: RecordedEvent) -> HostCommand | None:
        """The command a step event asks for, or None when the step is already over."""
        try:
            instance = await self.repository.get(event.originator_id, Instance)
        except NotFound:
            return None
        if event.topic.endswith(".Purged"):
            host_id = _purged_host(instance)
            if host_id is None:
                return None
            return HostCommand(
                step_id=f"purge-{instance.id}",
                host_id=host_id,
                instance_id=instance.id,
                action=Action.ENSURE_ABSENT,
            )
        if instance.step_id is None or instance.host_id is None:
            return None  # finished or timed out before we got to it
        step_state = _state_of_step(event)
        if step_state is not None and step_state != instance.status:
            return None
        action = _ACTIONS.get(instance.status, Action.ENSURE_RUNNING)
        host_id = instance.host_id
        if action == Action.MIGRATE and instance.migration is not None:
            if instance.migration.get("phase") == PREPARING:
                action, host_id = Action.PREPARE_MIGRATION, instance.migration["to_host_id"]
        spec = await self._spec(instance) if action in _WITH_SPEC else None
        password = None
        if action == Action.SET_PASSWORD and instance.password is not None:
            password = GuestPassword(user=instance.password["user"], hash=instance.password["hash"])
        return HostCommand(
            step_id=instance.step_id,
            host_id=host_id,
            instance_id=instance.id,
            action=action,
            spec=spec,
            force=instance.status == DELETING,
            hard=instance.status == REBOOTING and instance.hard,
            start=action == Action.REINSTALL and instance.resume == RUNNING,
            migration=await self._migration(instance) if action == Action.MIGRATE else None,
            password=password,
            expires_at=instance.deadline if instance.status == MIGRATING else None,
        )

    async def _migration(self, instance: Instance) -> MigrationOrder | None:
        """The source host's order: where to, by which name its hypervisor dials it."""
        if instance.migration is None:
            return None
        target = await self.repository.get(instance.migration["to_host_id"], Host)
        return MigrationOrder(
            target_host_id=target.id,
            target_hostname=target.hostname,
            live=bool(instance.migration["live"]),
        )

    @staticmethod
    def cleanup_for(event: RecordedEvent) -> HostCommand | None:
        """An evacuated guest is removed from the host it left, whenever that host returns.

        The command waits in the host's durable consumer, behind anything sent before it,
        so a host that comes back never keeps running a guest that now runs elsewhere.
        """
        state = msgspec.json.decode(event.state)
        from_host = state.get("from_host_id") if isinstance(state, dict) else None
        if not isinstance(from_host, str):
            return None
        return HostCommand(
            step_id=f"evacuated-{event.originator_id}-{event.originator_version}",
            host_id=from_host,
            instance_id=event.originator_id,
            action=Action.ENSURE_ABSENT,
        )

    async def confirm_for(self, event: RecordedEvent) -> HostCommand | None:
        """After a live migration, the target is asked to ensure what it now runs.

        Idempotent there (the disk, the definition and the running guest are all in place);
        its outcome says where the guest's console listens on its new host.
        """
        state = msgspec.json.decode(event.state)
        if not isinstance(state, dict) or not state.get("live"):
            return None
        try:
            instance = await self.repository.get(event.originator_id, Instance)
        except NotFound:
            return None
        target = instance.host_id
        if target is None or target != state.get("to_host_id"):
            return None
        if instance.status != RUNNING or instance.step_id:
            return None
        return HostCommand(
            step_id=f"migrated-{instance.id}-{event.originator_version}",
            host_id=target,
            instance_id=instance.id,
            action=Action.ENSURE_RUNNING,
            spec=await self._spec(instance),
        )

    @staticmethod
    def leftover_for(event: RecordedEvent) -> HostCommand | None:
        """A failed migration's target removes what it prepared (the disk, a half-made domain).

        Only when the guest is known to be on its source still (running or stopped there);
        after a timeout or a failure that left it nowhere in sight, nothing is removed.
        """
        state = msgspec.json.decode(event.state)
        if not isinstance(state, dict) or state.get("status") not in (RUNNING, STOPPED):
            return None
        target = state.get("to_host_id")
        if not isinstance(target, str):
            return None
        return HostCommand(
            step_id=f"unmigrated-{event.originator_id}-{event.originator_version}",
            host_id=target,
            instance_id=event.originator_id,
            action=Action.ENSURE_ABSENT,
        )

    @staticmethod
    def unsettled_for(event: RecordedEvent) -> HostCommand | None:
        """A migration settled where its guest was found: the other of its two hosts removes
        what it holds of it (a prepared disk on the target, the left disk on the source)."""
        state = msgspec.json.decode(event.state)
        if not isinstance(state, dict):
            return None
        ends = (state.get("from_host_id"), state.get("to_host_id"))
        others = [h for h in ends if isinstance(h, str) and h != state.get("host_id")]
        if len(others) != 1:
            return None
        return HostCommand(
            step_id=f"settled-{event.originator_id}-{event.originator_version}",
            host_id=others[0],
            instance_id=event.originator_id,
            action=Action.ENSURE_ABSENT,
        )

    @staticmethod
    def heal_for(event: RecordedEvent) -> HostCommand | None:
        """A drift healed by its event alone (not by a step of the instance): the guest is
        removed from (or stopped on) the host that reported it. See api/services/drift.py."""
        state = msgspec.json.decode(event.state)
        if not isinstance(state, dict) or state.get("step"):
            return None  # the step event that follows it is sent as steps are
        unknown = event.topic == _UNKNOWN_GUEST
        host_id = event.originator_id if unknown else state.get("host_id")
        instance_id = state.get("instance_id") if unknown else event.originator_id
        action = Action.ENSURE_ABSENT if unknown else Action(str(state.get("action")))
        step_id = state.get("step_id")
        if not all(isinstance(v, str) for v in (host_id, instance_id, step_id)):
            return None
        return HostCommand(
            step_id=str(step_id),
            host_id=str(host_id),
            instance_id=str(instance_id),
            action=action,
            force=action == Action.ENSURE_STOPPED,
        )

    async def image_command_for(self, event: RecordedEvent) -> HostCommand | None:
        """An image's import (or an instance's export) for the host chosen for it."""
        try:
            image = await self.repository.get(event.originator_id, Image)
        except NotFound:
            return None
        state = msgspec.json.decode(event.state)
        step_id = state.get("step_id") if isinstance(state, dict) else None
        if image.status != IMPORTING or image.step_id is None or image.host_id is None:
            return None  # reported, deleted or timed out before we got to it
        if image.step_id != step_id or image.deleted:
            return None
        pool = await self.repository.get(image.pool_id, ImagePool)
        source = image.source or {}
        exported = source.get("instance_id")
        return HostCommand(
            step_id=image.step_id,
            host_id=image.host_id,
            instance_id=exported or image.id,
            action=Action.EXPORT_IMAGE if exported else Action.IMPORT_IMAGE,
            image=ImageOrder(
                image_id=image.id,
                pool_location=pool.location,
                url=source.get("url"),
                path=source.get("path"),
                source_format=source.get("format"),
                public_only=not image.public,
                upload=image.id if "upload" in source else None,
                sha256=source.get("upload"),
            ),
        )

    async def _spec(self, instance: Instance) -> GuestSpec:
        image = await self.repository.get(instance.image_id, Image)
        gpus: tuple[str, ...] = ()
        if instance.gpu_count and instance.host_id is not None:
            host = await self.repository.get(instance.host_id, Host)
            gpus = tuple(host.claims.get(instance.id, {}).get("gpus", ()))
        return GuestSpec(
            gpus=gpus,
            vcpus=instance.vcpus,
            memory_mb=instance.memory_mb,
            disk_gb=instance.disk_gb,
            image_location=image.location,
            image_format=image.disk_format,
            kernel=image.kernel,
            initrd=image.initrd,
            cmdline=image.cmdline,
            max_vcpus=instance.max_vcpus,
            max_memory_mb=instance.max_memory_mb,
        )

    async def publish(self, command: HostCommand) -> None:
        await self.js.publish(
            hostwire.command_subject(command.host_id),
            hostwire.encode(command),
            headers={Header.MSG_ID: command.step_id},
        )

    async def run_once(self) -> int:
        async with self.store.pool.acquire() as conn:
            await conn.execute(self.checkpoints.ddl)
            position = await self.checkpoints.read(conn, self.name)
        sent = 0
        while batch := await self.store.read_all(after=position, limit=500):
            for event in batch:
                if event.topic == _EVACUATED:
                    cleanup = self.cleanup_for(event)
                    if cleanup is not None:
                        await self.publish(cleanup)
                if event.topic == _MIGRATED:
                    confirm = await self.confirm_for(event)
                    if confirm is not None:
                        await self.publish(confirm)
                if event.topic == _UNMIGRATED:
                    leftover = self.leftover_for(event)
                    if leftover is not None:
                        await self.publish(leftover)
                if event.topic == _SETTLED:
                    unsettled = self.unsettled_for(event)
                    if unsettled is not None:
                        await self.publish(unsettled)
                if event.topic in (_DRIFT, _UNKNOWN_GUEST):
                    heal = self.heal_for(event)
                    if heal is not None:
                        await self.publish(heal)
                if event.topic == _IMAGE_STEP:
                    imaging = await self.image_command_for(event)
                    if imaging is not None:
                        await self.publish(imaging)
                if event.topic in _STEPS:
                    command = await self.command_for(event)
                    if command is not None:
                        await self.publish(command)
                        sent += 1
            position = batch[-1].position
            async with self.store.pool.acquire() as conn, conn.transaction():
                await self.checkpoints.lock(conn, self.name)
                await self.checkpoints.advance(conn, self.name, position)
        return sent

    async def run(self, stop: asyncio.Event) -> None:
        async with self.store.appended() as appended:
            while not stop.is_set():
                appended.clear()
                try:
                    await self.ensure_streams()
                    await self.run_once()
                except Exception as error:  # NATS or the database hiccuped: resume later
                    log.warning("host command dispatcher: %s", error)
                await wait_any(appended, stop, timeout=1.0)


def _state_of_step(event: RecordedEvent) -> str | None:
    if event.topic.endswith(".Scheduled"):
        return "building"
    state = msgspec.json.decode(event.state)
    status = state.get("status") if isinstance(state, dict) else None
    return status if isinstance(status, str) else None


def _purged_host(instance: Instance) -> str | None:
    return instance.host_id
