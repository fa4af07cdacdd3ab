"""The platform's settings: one typed object, built once at an entry point."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path

import msgspec
import platformdirs


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a process needs to know about its surroundings."""

    database_url: str | None = None
    """PostgreSQL DSN; None starts the embedded server under ``state_dir``."""
    nats_url: str | None = None
    """NATS URL; None starts the embedded nats-server under ``state_dir``."""
    state_dir: Path = Path(platformdirs.user_data_dir("scloudstack"))
    schema: str = "scloud"
    """PostgreSQL schema holding the event store and every projection."""
    api_host: str = "127.0.0.1"
    api_port: int = 8080
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
    token_ttl_seconds: int = 12 * 3600
    webhook_loopback_only: bool = False
    """Deliver webhooks to loopback addresses only (test and sandbox platforms)."""
    host_id: str = socket.gethostname()
    """This hypervisor's name, for ``scloud hostd``."""
    host_join_token: str | None = None
    """A join token an admin issued: ``scloud hostd`` registers with it (once) over NATS."""
    host_register_subject: str = "hosts.register"
    """Where host daemons send their registration request and the platform answers it."""
    host_driver: str = "libvirt"
    """``libvirt`` (QEMU through libvirt, qcow2 disks) or ``simulated`` (in memory)."""
    libvirt_uri: str = "qemu:///system"
    libvirt_domain_type: str = "qemu"
    """``qemu`` (TCG) or ``kvm``; KVM only where a smoke boot under it succeeds."""
    libvirt_peer_uri: str = "qemu+tcp://{hostname}/system"
    """Where a migration goes: the target host's libvirtd, ``{hostname}`` filled in."""
    host_state_dir: Path | None = None
    """Where ``scloud hostd`` keeps disks and serial logs; None: ``state_dir``/host."""
    host_image_pools: tuple[Path, ...] = (Path("/var/lib/scloud/images"),)
    """The image pool directories on this hypervisor (``SCLOUD_HOST_IMAGE_POOLS``, separated
    by ``:``), besides ``<host state dir>/images``: the host reads images and kernels from
    them and writes imports into them only, whatever a step names."""
    host_observe_seconds: float = 30.0
    """How often a host reports its observed instances."""
    host_down_after_seconds: float = 30.0
    rebalance_load_per_core: float = 0.0
    """A host whose one-minute load per core stays above this is relieved by live-migrating
    instances to hosts below it, one per ``rebalance_after_seconds``; 0 turns it off."""
    rebalance_after_seconds: float = 300.0
    """A host without a heartbeat this long is marked down and its instances evacuated."""
    billing_settle_seconds: float = 30.0
    """How often metered usage is rated and posted (whole hours only); 0 turns it off."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``SCLOUD_*`` variables; anything unset keeps its default."""
        env = os.environ if env is None else env
        defaults = cls()
        state_dir = env.get("SCLOUD_STATE_DIR")
        return cls(
            database_url=env.get("SCLOUD_DATABASE_URL") or None,
            nats_url=env.get("SCLOUD_NATS_URL") or None,
            state_dir=Path(state_dir) if state_dir else defaults.state_dir,
            schema=env.get("SCLOUD_SCHEMA", defaults.schema),
            api_host=env.get("SCLOUD_API_HOST", defaults.api_host),
            api_port=int(env.get("SCLOUD_API_PORT", str(defaults.api_port))),
            admin_email=env.get("SCLOUD_ADMIN_EMAIL", defaults.admin_email),
            admin_password=env.get("SCLOUD_ADMIN_PASSWORD") or None,
            stream_name=env.get("SCLOUD_STREAM", defaults.stream_name),
            subject_prefix=env.get("SCLOUD_SUBJECT_PREFIX", defaults.subject_prefix),
            host_id=env.get("SCLOUD_HOST_ID", defaults.host_id),
            host_join_token=env.get("SCLOUD_HOST_JOIN_TOKEN") or None,
            host_register_subject=env.get(
                "SCLOUD_HOST_REGISTER_SUBJECT", defaults.host_register_subject
            ),
            host_driver=env.get("SCLOUD_HOST_DRIVER", defaults.host_driver),
            libvirt_uri=env.get("SCLOUD_LIBVIRT_URI", defaults.libvirt_uri),
            libvirt_domain_type=env.get("SCLOUD_LIBVIRT_DOMAIN_TYPE", defaults.libvirt_domain_type),
            libvirt_peer_uri=env.get("SCLOUD_LIBVIRT_PEER_URI", defaults.libvirt_peer_uri),
            host_state_dir=Path(env["SCLOUD_HOST_STATE_DIR"])
            if env.get("SCLOUD_HOST_STATE_DIR")
            else None,
            host_image_pools=tuple(Path(p) for p in env["SCLOUD_HOST_IMAGE_POOLS"].split(":") if p)
            if "SCLOUD_HOST_IMAGE_POOLS" in env
            else defaults.host_image_pools,
            host_observe_seconds=float(
                env.get("SCLOUD_HOST_OBSERVE_SECONDS", str(defaults.host_observe_seconds))
            ),
            host_down_after_seconds=float(
                env.get("SCLOUD_HOST_DOWN_AFTER_SECONDS", str(defaults.host_down_after_seconds))
            ),
            rebalance_load_per_core=float(
                env.get("SCLOUD_REBALANCE_LOAD_PER_CORE", str(defaults.rebalance_load_per_core))
            ),
            rebalance_after_seconds=float(
                env.get("SCLOUD_REBALANCE_AFTER_SECONDS", str(defaults.rebalance_after_seconds))
            ),
            billing_settle_seconds=float(
                env.get("SCLOUD_BILLING_SETTLE_SECONDS", str(defaults.billing_settle_seconds))
            ),
            token_key=env.get("SCLOUD_TOKEN_KEY") or None,
            webhook_loopback_only=env.get("SCLOUD_WEBHOOK_LOOPBACK_ONLY", "0") not in ("", "0"),
            token_ttl_seconds=int(
                env.get("SCLOUD_TOKEN_TTL_SECONDS", str(defaults.token_ttl_seconds))
            ),
        )
