"""PostgreSQL and NATS run by the platform itself, as child processes, when none is configured."""

from gateways.embedded.errors import (
    BinaryNotFound,
    EmbeddedServiceError,
    ServiceStartFailed,
    StateDirInUse,
)
from gateways.embedded.nats import EmbeddedNats
from gateways.embedded.postgres import EmbeddedPostgres
from gateways.embedded.probe import jetstream_answers, postgres_answers
from gateways.embedded.services import platform_services

__all__ = [
    "BinaryNotFound",
    "EmbeddedNats",
    "EmbeddedPostgres",
    "EmbeddedServiceError",
    "ServiceStartFailed",
    "StateDirInUse",
    "jetstream_answers",
    "platform_services",
    "postgres_answers",
]
