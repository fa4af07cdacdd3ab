"""A host's periodic report of what really runs on it, so the platform can heal drift."""

from __future__ import annotations

import logging

from nats.aio.client import Client

from gateways.bus import hostwire
from gateways.bus.hostwire import ObservedState
from gateways.bus.hostwire import PowerState as WireState
from hostd.drivers.compute.port import ComputeDriver, DriverError
from hostd.streams import HostBus

log = logging.getLogger(__name__)


async def observed_state(host_id: str, compute: ComputeDriver) -> ObservedState:
    instances = await compute.observed()
    return ObservedState(
        host_id=host_id,
        instances={name: WireState(state.value) for name, state in instances.items()},
    )


async def report(nc: Client, bus: HostBus, host_id: str, compute: ComputeDriver) -> int | None:
    """Publish one report (plain NATS: each replaces the last); the instance count, or None."""
    try:
        state = await observed_state(host_id, compute)
    except DriverError as error:
        # Saying nothing is better than saying "nothing runs here" (which reads as drift).
        log.warning("hostd %s: cannot observe instances: %s", host_id, error)
        return None
    await nc.publish(bus.observed_subject(host_id), hostwire.encode(state))
    return len(state.instances)
