"""The compute bench's simulated hosts in a process of their own, as hosts are machines of
their own: ``python -m tests.bench.processes.compute_fleet`` reads ``{"nats_url", "host_ids",
"heartbeat_every"}`` as JSON on stdin, prints ``ready`` once every daemon pulls its
commands, and closes the fleet (its consumers stay for the bench to remove) on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import msgspec

from hostd.fleet import SimulatedFleet


class FleetOrder(msgspec.Struct, frozen=True):
    nats_url: str
    host_ids: list[str]
    heartbeat_every: float


async def serve(order: FleetOrder) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(number, stop.set)
    fleet = SimulatedFleet(
        len(order.host_ids),
        order.nats_url,
        host_ids=order.host_ids,
        heartbeat_every=order.heartbeat_every,
    )
    await fleet.start()
    try:
        print("ready", flush=True)
        await stop.wait()
    finally:
        await fleet.close()


def main() -> None:
    asyncio.run(serve(msgspec.json.decode(sys.stdin.buffer.read(), type=FleetOrder)))


if __name__ == "__main__":
    main()
