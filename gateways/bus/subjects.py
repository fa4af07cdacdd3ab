"""NATS subject names for exported events: ``events.<tenant>.<aggregate>.<EventName>``."""

from __future__ import annotations

import re

EVENTS_PREFIX = "events"
PLATFORM_TENANT = "_platform"
"""Subject token for events that belong to no tenant (regions, hosts, flavors)."""

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def token(value: str) -> str:
    """A subject token: NATS gives ``.``, ``*``, ``>`` and spaces meaning, so they go."""
    cleaned = _UNSAFE.sub("_", value)
    return cleaned or "_"


def event_name(topic: str) -> str:
    """``domain.compute.instance:Instance.Started`` → ``Started``."""
    return topic.rpartition(":")[2].rpartition(".")[2]


def event_subject(
    tenant_id: str | None, originator_id: str, topic: str, prefix: str = EVENTS_PREFIX
) -> str:
    tenant = token(tenant_id) if tenant_id else PLATFORM_TENANT
    return f"{prefix}.{tenant}.{token(originator_id)}.{token(event_name(topic))}"


def tenant_filter(tenant_id: str, prefix: str = EVENTS_PREFIX) -> str:
    """The subject filter that matches one tenant's events and nothing else."""
    return f"{prefix}.{token(tenant_id)}.>"
