"""The platform's settings: one typed object, built once at an entry point."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import platformdirs

from gateways.starter_image import STARTER_DIR

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a process needs to know about its surroundings."""

    database_url: str | None = None
    """PostgreSQL DSN; None starts the embedded server under ``state_dir``."""
    nats_url: str | None = None
    """NATS URL; None starts the embedded nats-server under ``state_dir``."""
    state_dir: Path = Path(platformdirs.user_data_dir("scloudstack"))
    schema: Annotated[str, msgspec.Meta(pattern="^[a-z_][a-z0-9_]{0,62}$")] = "scloud"
    """PostgreSQL schema holding the event store and every projection."""
    api_host: str = "127.0.0.1"
    api_port: Port = 8080
    admin_email: str = "admin@scloud.local"
    admin_password: str | None = None
    """First admin's password; None generates one and prints it once."""
    stream_name: str = "SCLOUD_EVENTS"
    """JetStream stream the relay publishes every event to."""
    subject_prefix: str = "events"
    """First token of every exported event's subject (one NATS, several platforms)."""
    token_key: str | None = None
    """Hex key that signs bearer tokens; shared by every API replica. None: one is
    generated and kept in ``state_dir`` (fine for a single machine)."""
    token_ttl_seconds: Annotated[int, msgspec.Meta(ge=60)] = 12 * 3600
    webhook_loopback_only: bool = False
    """Deliver webhooks to loopback addresses only (test and sandbox platforms)."""
    webhook_pause_after_hours: float = 24.0
    """Hours a webhook's target may fail without a success before the webhook is paused."""
    host_id: str = socket.gethostname()
    """This hypervisor's name, for ``scloud hostd``."""
    host_join_token: str | None = None
    """A join token an admin issued: ``scloud hostd`` registers with it (once) over NATS."""
    host_register_subject: str = "hosts.register"
    """Where host daemons send their registration request and the platform answers it."""
    host_driver: Literal["libvirt", "simulated"] = "libvirt"
    """``libvirt`` (QEMU through libvirt, qcow2 disks) or ``simulated`` (in memory)."""
    libvirt_uri: str = "qemu:///system"
    libvirt_domain_type: Literal["qemu", "kvm"] = "qemu"
    """``qemu`` (TCG) or ``kvm``; KVM only where a smoke boot under it succeeds."""
    libvirt_peer_uri: str = "qemu+tcp://{hostname}/system"
    """Where a migration goes: the target host's libvirtd, ``{hostname}`` filled in."""
    host_state_dir: Path | None = None
    """Where ``scloud hostd`` keeps disks and serial logs; None: ``state_dir``/host."""
    host_image_pools: tuple[Path, ...] = (Path("/var/lib/scloud/images"),)
    """The image pool directories on this hypervisor (``SCLOUD_HOST_IMAGE_POOLS``, separated
    by ``:``), besides ``<host state dir>/images``: the host reads images and kernels from
    them and writes imports into them only, whatever a step names."""
    host_observe_seconds: Positive = 30.0
    """How often a host reports its observed instances."""
    host_down_after_seconds: Positive = 30.0
    """A host without a heartbeat this long is marked down and its instances evacuated."""
    rebalance_load_per_core: NonNegative = 0.0
    """A host whose one-minute load per core stays above this is relieved by live-migrating
    instances to hosts below it, one per ``rebalance_after_seconds``; 0 turns it off."""
    rebalance_after_seconds: Positive = 300.0
    billing_settle_seconds: NonNegative = 30.0
    """How often metered usage is rated and posted (whole hours only); 0 turns it off."""
    max_waiting_builds: Annotated[int, msgspec.Meta(ge=1)] = 1000
    """Creates answer 429 while this many instances wait to be built (platform-wide)."""
    max_build_wait_seconds: Positive = 60.0
    """Creates answer 429 while the oldest waiting build has waited this long."""
    max_dispatch_lag_events: Annotated[int, msgspec.Meta(ge=1)] = 5000
    """Creates answer 429 while host commands are this many events behind the store."""
    tenant_requests_per_second: Annotated[int, msgspec.Meta(ge=0)] = 1000
    """Each API process answers a tenant 429 past this many requests a second; 0: no limit."""
    first_start: bool = True
    """``scloud run`` makes a local cloud on its first start (region, cluster, its own host,
    the starter image, flavors, a price book and a demo tenant)."""
    starter_image_dir: Path = STARTER_DIR
    """Where the starter image is built (by ``make install``) and found."""
    denials_per_source: Annotated[int, msgspec.Meta(ge=0)] = 60
    """Denied requests (401, 403, another tenant's id) recorded one by one per source address
    and window; beyond that they are counted, and the count is recorded when it ends."""
    denials_window_seconds: Positive = 60.0
    denials_linger_seconds: NonNegative = 0.25
    """How long a denial waits for others to share its append to the store."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``SCLOUD_*`` variables; anything unset (or empty) keeps its default.

        Raises ``SettingsError`` naming the variable whose value does not fit.
        """
        env = os.environ if env is None else env
        given: dict[str, Any] = {
            field: env[name] for field, name in variables().items() if env.get(name, "") != ""
        }
        if "host_image_pools" in given:  # a path list, as PATH is
            given["host_image_pools"] = [p for p in given["host_image_pools"].split(":") if p]
        try:
            return msgspec.convert(given, cls, strict=False, dec_hook=_decode)
        except msgspec.ValidationError as error:
            raise SettingsError(_named(str(error))) from None


class SettingsError(ValueError):
    """A ``SCLOUD_*`` variable whose value does not fit: the message names it."""


_RENAMED = {"stream_name": "SCLOUD_STREAM"}
"""Fields whose variable is not ``SCLOUD_`` and the field's name in capitals."""


def variables() -> dict[str, str]:
    """Every setting's environment variable, by field name."""
    return {
        field: _RENAMED.get(field, f"SCLOUD_{field.upper()}")
        for field in Settings.__struct_fields__
    }


def _decode(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


def _named(message: str) -> str:
    """msgspec says ``… - at `$.api_port```: say which variable that is instead."""
    detail, _, where = message.rpartition(" - at `$.")
    field = where.rstrip("`").split(".")[0].split("[")[0]
    name = variables().get(field)
    return f"{name}: {detail}" if name and detail else message
