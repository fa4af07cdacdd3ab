"""PostgreSQL, NATS and libvirtd run by the platform itself, as child processes, when needed."""

from gateways.embedded.errors import (
    BinaryNotFound,
    EmbeddedServiceError,
    ServiceStartFailed,
    StateDirInUse,
)
from gateways.embedded.libvirtd import EmbeddedLibvirtd
from gateways.embedded.nats import EmbeddedNats
from gateways.embedded.postgres import EmbeddedPostgres
from gateways.embedded.probe import jetstream_answers, libvirt_answers, postgres_answers
from gateways.embedded.services import host_libvirtd, platform_services

__all__ = [
    "BinaryNotFound",
    "EmbeddedLibvirtd",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "EmbeddedServiceError",
    "ServiceStartFailed",
    "StateDirInUse",
    "host_libvirtd",
    "jetstream_answers",
    "libvirt_answers",
    "platform_services",
    "postgres_answers",
]
