"""The composition root of ``scloud hostd``: one per hypervisor, talking only to NATS."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import nats

from gateways.bus.image_uploads import ImageUploads
from gateways.settings import Settings
from hostd.apply import Host, HostLayout
from hostd.daemon import DaemonOptions, HostDaemon
from hostd.drivers.compute.port import ComputeDriver
from hostd.heartbeat import BUCKET, beat
from hostd.register import join
from hostd.storage.port import StorageDriver, UploadStore
from hostd.streams import HostBus, checked_host_id


@contextlib.asynccontextmanager
async def open_drivers(
    settings: Settings, host_id: str, state_dir: Path, uploads: UploadStore | None = None
) -> AsyncIterator[tuple[ComputeDriver, StorageDriver]]:
    """The compute and storage drivers ``settings.host_driver`` names."""
    if settings.host_driver == "simulated":
        from hostd.drivers.compute.simulated import SimulatedCompute
        from hostd.storage.simulated import SimulatedStorage

        yield SimulatedCompute(host_id), SimulatedStorage()
        return
    if settings.host_driver != "libvirt":
        raise ValueError(f"SCLOUD_HOST_DRIVER={settings.host_driver!r}: libvirt or simulated")
    from hostd.drivers.compute.libvirt import LibvirtCompute
    from hostd.storage.qcow2 import Qcow2Storage

    compute = LibvirtCompute(
        settings.libvirt_uri,
        domain_type=settings.libvirt_domain_type,
        peer_uri=settings.libvirt_peer_uri,
    )
    try:
        pools = (*settings.host_image_pools, state_dir / "images")
        yield compute, Qcow2Storage(state_dir, pools=pools, uploads=uploads)
    finally:
        await compute.close()


async def run_hostd(
    nats_url: str,
    host_id: str,
    stop: asyncio.Event,
    settings: Settings | None = None,
    every: float = 5.0,
    *,
    bus: HostBus | None = None,
    bucket_name: str = BUCKET,
    join_token: str | None = None,
    hostname: str | None = None,
) -> None:
    """Serve this host's commands and send its heartbeat every ``every`` seconds until stop.

    ``bus`` and ``bucket_name`` name other streams and another heartbeat bucket (tests).
    With a join token (``join_token`` or ``SCLOUD_HOST_JOIN_TOKEN``) the host first
    registers over NATS as ``hostname`` and runs under the host id the platform answers
    (``host_id`` is then not used); without one, ``host_id`` names a registered host.
    """
    settings = settings or Settings()
    token = join_token or settings.host_join_token
    if token:
        joined = await join(
            nats_url,
            token,
            stop,
            state_dir=settings.host_state_dir or settings.state_dir / "host",
            hostname=hostname,
            subject=settings.host_register_subject,
        )
        if joined is None:
            return  # stopped before any platform answered
        host_id = joined
    try:
        checked_host_id(host_id)
    except ValueError as error:
        raise ValueError(f"{error} (set SCLOUD_HOST_ID)") from None
    state_dir = settings.host_state_dir or settings.state_dir / "host"
    layout = HostLayout(state_dir)
    if settings.host_driver != "simulated":
        layout.create()
    client = await nats.connect(nats_url, name=f"hostd-{host_id}", max_reconnect_attempts=-1)
    try:
        uploads = ImageUploads(client.jetstream())
        async with open_drivers(settings, host_id, state_dir, uploads) as (compute, storage):
            host = Host(host_id, compute, storage, layout)

            async def count() -> int:
                return len(await compute.observed())

            daemon = HostDaemon(
                client,
                host,
                bus=bus,
                options=DaemonOptions(observe_every=settings.host_observe_seconds),
            )
            # The heartbeat ends when the daemon does (on stop, or on a failure) through
            # ``done``, not only through cancellation, which nats-py's wait_for can swallow.
            done = asyncio.Event()

            async def serve() -> None:
                try:
                    await daemon.run(stop)
                finally:
                    done.set()

            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(serve())
                tasks.create_task(
                    beat(client.jetstream(), host_id, done, every, count, bucket_name=bucket_name)
                )
    finally:
        await client.drain()
