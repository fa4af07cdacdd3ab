"""The host daemons' JetStream streams, consumers and subject names.

- Commands (``cmd.host.>``) are a work queue: a command leaves the stream once its host
  acks it, so a host whose consumer is recreated never replays commands it already applied,
  and commands for a host that is not up yet wait for it (at most ``COMMAND_MAX_AGE``).
- Outcomes (``outcome.host.>``) keep limits retention for the platform's ingester and keep
  message ids for ten minutes: a command redelivered after a crash republishes its outcome
  under the same step id and the server drops the copy. Past that window the ingester's
  idempotency key (the step id) still drops it.
- Observed-state reports are plain NATS on ``observed.host.<host>``, not a stream: each one
  replaces the last, a lost one is followed by the next, and no one needs history.
"""

from __future__ import annotations

import logging
import re

import msgspec
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from gateways.bus import hostwire

log = logging.getLogger(__name__)

OBSERVED_PREFIX = "observed.host"
COMMAND_MAX_AGE = 24 * 3600.0
OUTCOME_MAX_AGE = 7 * 24 * 3600.0
_HOST_ID = re.compile(r"^[A-Za-z0-9_-]+$")


class HostBus(msgspec.Struct, frozen=True, kw_only=True):
    """Stream names and subject prefixes; tests and benches give their own to stay apart."""

    commands_stream: str = hostwire.COMMANDS_STREAM
    outcomes_stream: str = hostwire.OUTCOMES_STREAM
    commands_prefix: str = hostwire.COMMANDS_PREFIX
    outcomes_prefix: str = hostwire.OUTCOMES_PREFIX
    observed_prefix: str = OBSERVED_PREFIX

    def command_subject(self, host_id: str) -> str:
        return f"{self.commands_prefix}.{host_id}"

    def outcome_subject(self, host_id: str) -> str:
        return f"{self.outcomes_prefix}.{host_id}"

    def observed_subject(self, host_id: str) -> str:
        return f"{self.observed_prefix}.{host_id}"


def checked_host_id(host_id: str) -> str:
    """A host id is one subject token and part of a consumer name: letters, digits, _ and -."""
    if not _HOST_ID.match(host_id):
        raise ValueError(f"host id {host_id!r} must be letters, digits, '_' or '-'")
    return host_id


def durable_name(host_id: str) -> str:
    return f"hostd-{checked_host_id(host_id)}"


def command_stream_config(bus: HostBus) -> StreamConfig:
    return StreamConfig(
        name=bus.commands_stream,
        subjects=[f"{bus.commands_prefix}.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120.0,
        max_age=COMMAND_MAX_AGE,
    )


def outcome_stream_config(bus: HostBus) -> StreamConfig:
    return StreamConfig(
        name=bus.outcomes_stream,
        subjects=[f"{bus.outcomes_prefix}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=600.0,
        max_age=OUTCOME_MAX_AGE,
    )


async def ensure_streams(js: JetStreamContext, bus: HostBus) -> None:
    for config in (command_stream_config(bus), outcome_stream_config(bus)):
        assert config.name is not None
        try:
            info = await js.stream_info(config.name)
            if info.config.retention != config.retention:
                # Retention cannot change on a live stream; say so rather than guess.
                log.warning(
                    "stream %s has %s retention, hosts expect %s: delete it to recreate it",
                    config.name,
                    info.config.retention,
                    config.retention,
                )
        except NotFoundError:
            try:
                await js.add_stream(config)
            except BadRequestError:
                # Another host (or the platform) made it between our look and our add.
                await js.stream_info(config.name)


def consumer_config(host_id: str, bus: HostBus, *, ack_wait: float, window: int) -> ConsumerConfig:
    """A host's durable pull consumer: explicit acks, redelivered without limit."""
    name = durable_name(host_id)
    return ConsumerConfig(
        name=name,
        durable_name=name,
        filter_subject=bus.command_subject(host_id),
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        max_ack_pending=window,
    )


async def ensure_consumer(
    js: JetStreamContext, host_id: str, bus: HostBus, *, ack_wait: float, window: int
) -> str:
    """Create the host's consumer unless it exists (a restarted host resumes it); its name.

    An existing consumer keeps its position and what it has delivered; only its ack wait
    and window follow the daemon's options (the server updates those in place).
    """
    config = consumer_config(host_id, bus, ack_wait=ack_wait, window=window)
    assert config.durable_name is not None
    try:
        info = await js.consumer_info(bus.commands_stream, config.durable_name)
    except NotFoundError:
        await js.add_consumer(bus.commands_stream, config)
        return config.durable_name
    current = info.config
    if (current.ack_wait, current.max_ack_pending) != (config.ack_wait, config.max_ack_pending):
        try:
            await js.add_consumer(bus.commands_stream, config)
        except BadRequestError as error:
            log.warning("consumer %s keeps its old settings: %s", config.durable_name, error)
    return config.durable_name
