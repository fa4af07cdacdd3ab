"""What the platform and a host daemon say to each other over JetStream.

Commands go to ``cmd.host.<host_id>`` (stream SCLOUD_HOST_COMMANDS): each states a desired
state and carries its step id as ``Nats-Msg-Id``. Outcomes come back on
``outcome.host.<host_id>`` (stream SCLOUD_HOST_OUTCOMES), also with the step id as
``Nats-Msg-Id``; a host acks a command only after its outcome is acknowledged.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class PowerState(StrEnum):
    """What a host observed (same values as the compute driver port's PowerState)."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    CRASHED = "crashed"
    ABSENT = "absent"


COMMANDS_STREAM = "SCLOUD_HOST_COMMANDS"
OUTCOMES_STREAM = "SCLOUD_HOST_OUTCOMES"
COMMANDS_PREFIX = "cmd.host"
OUTCOMES_PREFIX = "outcome.host"


class Action(StrEnum):
    ENSURE_RUNNING = "ensure_running"
    """Define (from ``spec``) if needed, then start."""
    ENSURE_STOPPED = "ensure_stopped"
    REBOOT = "reboot"
    ENSURE_ABSENT = "ensure_absent"
    """Stop and undefine; the disk is the storage driver's business."""
    PREPARE_MIGRATION = "prepare_migration"
    """Sent to a migration's target: make the guest's root disk ready, from ``spec``'s image
    at its size (the source then copies only what the guest changed on top of the image)."""
    MIGRATE = "migrate"
    """Sent to the source host: move the guest to ``migration.target_host_id``."""
    REINSTALL = "reinstall"
    """Rebuild the root disk from ``spec``'s image; running afterwards if ``start``."""
    SET_PASSWORD = "set_password"  # noqa: S105 - an action, not a password
    """Set a user's password in the running guest from its crypt(3) hash."""
    IMPORT_IMAGE = "import_image"
    """Fetch ``image``'s source (a URL or a file of the pool's incoming directory) and convert
    it to qcow2 in the pool; ``instance_id`` is the image's id."""
    EXPORT_IMAGE = "export_image"
    """Flatten the (stopped) instance's root disk into the pool as ``image.image_id``."""
    RESIZE = "resize"
    """Give the running guest ``spec``'s vCPUs and memory live (hot-plug); refused with the
    cause when it cannot grow so (the platform then restarts it at that size)."""


IMAGE_ACTIONS = frozenset({Action.IMPORT_IMAGE, Action.EXPORT_IMAGE})


class GuestSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What the platform wants on the host; the host turns it into disks and a domain."""

    vcpus: int
    memory_mb: int
    disk_gb: int
    image_location: str
    """The base image in the host's image pool (a file path or ``rbd:pool/image``)."""
    image_format: str = "qcow2"
    kernel: str | None = None
    """Direct kernel boot (tiny images); None boots the disk."""
    initrd: str | None = None
    cmdline: str | None = None
    macs: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    """PCI addresses claimed on this host."""
    max_vcpus: int | None = None
    max_memory_mb: int | None = None
    """The room a guest is defined with to grow live (None: none above its size)."""


class MigrationOrder(msgspec.Struct, frozen=True, kw_only=True):
    target_host_id: str
    target_hostname: str
    """What the source's hypervisor dials (libvirt's peer-to-peer destination)."""
    live: bool
    """Live: the guest keeps running. Cold: it is stopped first (if it runs) and moved."""


class GuestPassword(msgspec.Struct, frozen=True, kw_only=True):
    user: str
    hash: str
    """crypt(3) SHA-512 (``$6$…``), as /etc/shadow and cloud-init's hashed_passwd take it."""


class ImageOrder(msgspec.Struct, frozen=True, kw_only=True):
    image_id: str
    pool_location: str
    """The image pool's directory on the host: the result is ``<pool>/<image_id>.qcow2``."""
    url: str | None = None
    path: str | None = None
    source_format: str | None = None
    """What the source is (``qemu-img -f``); None: probed. A source with a backing file or an
    external data file is refused either way (it would copy host files into the image)."""
    public_only: bool = True
    """A tenant's URL: the host connects to public addresses only. False for staff's."""
    upload: str | None = None
    """The name of the uploaded bytes in the platform's upload object store (NATS)."""
    sha256: str | None = None
    """The upload's SHA-256, checked by the host on what it fetched."""


class ImageReport(msgspec.Struct, frozen=True, kw_only=True):
    location: str
    size_bytes: int
    virtual_size_bytes: int
    sha256: str


class HostCommand(msgspec.Struct, frozen=True, kw_only=True):
    step_id: str
    host_id: str
    instance_id: str
    action: Action
    spec: GuestSpec | None = None
    hard: bool = False
    force: bool = False
    start: bool = False
    """For a reinstall: start the guest on its new disk."""
    migration: MigrationOrder | None = None
    password: GuestPassword | None = None
    image: ImageOrder | None = None
    expires_at: datetime | None = None
    """When the platform gives the step up (its deadline): delivered later (a daemon that was
    down), it is answered as expired and never applied. Set on migration steps, whose late
    move would carry a guest off a host the platform has settled it on."""


class Console(msgspec.Struct, frozen=True):
    """Where a running guest's VNC display listens, as its host sees it."""

    host: str
    port: int


class HostOutcome(msgspec.Struct, frozen=True, kw_only=True):
    step_id: str
    host_id: str
    instance_id: str
    action: Action
    ok: bool
    state: PowerState
    """What the host observed after applying the command."""
    error: str | None = None
    console: Console | None = None
    """The guest's VNC endpoint when it runs here after the command."""
    image_id: str | None = None
    """The image an import or export step made (with ``image``, its file, when ok)."""
    image: ImageReport | None = None


class ObservedState(msgspec.Struct, frozen=True, kw_only=True):
    """A host's periodic report of what really runs on it: the platform heals drift."""

    host_id: str
    instances: dict[str, PowerState]


def command_subject(host_id: str) -> str:
    return f"{COMMANDS_PREFIX}.{host_id}"


def outcome_subject(host_id: str) -> str:
    return f"{OUTCOMES_PREFIX}.{host_id}"


encode = msgspec.json.Encoder().encode
decode_command = msgspec.json.Decoder(HostCommand).decode
decode_outcome = msgspec.json.Decoder(HostOutcome).decode
decode_observed = msgspec.json.Decoder(ObservedState).decode
