"""A host daemon's registration: its join token, hostname and hardware, sent over NATS.

The platform answers the host id to run under. The answer is kept in the host's state
directory (``registration.json``), so a restart with the same token (still in the
environment) runs as the same host instead of being refused for reusing it; the request's
id is kept before it is sent, so a reply lost in a crash is answered again on restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import socket
import uuid
from pathlib import Path

import nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from gateways.bus import registration
from gateways.bus.registration import RegisterGpu, RegisterReply, RegisterRequest
from gateways.waiting import wait_any

log = logging.getLogger(__name__)

RECORD = "registration.json"
RETRYABLE = frozenset({"unavailable", "idempotency_key_in_use", "concurrency_conflict"})
"""Refusals that say nothing about the token: asked again."""
_GPU_CLASSES = ("0x0300", "0x0302")
"""PCI display controllers: VGA-compatible and 3D."""


class RegistrationRefused(Exception):
    """The platform refused this host's join token (used, expired, revoked, wrong…)."""

    def __init__(self, reply: RegisterReply) -> None:
        super().__init__(f"join token refused ({reply.code}): {reply.reason}")
        self.reply = reply


def local_hostname() -> str:
    return socket.gethostname().lower()


def _memory_mb() -> int:
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20


def _disk_gb(state_dir: Path) -> int:
    where = state_dir
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).total // 2**30


def capacity(state_dir: Path) -> dict[str, int]:
    """What this machine offers: CPU threads, memory and the disk its state directory is on."""
    return {
        "vcpus": os.cpu_count() or 1,
        "memory_mb": _memory_mb(),
        "disk_gb": _disk_gb(state_dir),
    }


def gpus(devices: Path = Path("/sys/bus/pci/devices")) -> list[RegisterGpu]:
    """GPUs ready for passthrough: display controllers bound to ``vfio-pci``."""
    found: list[RegisterGpu] = []
    if not devices.is_dir():
        return found
    for device in sorted(devices.iterdir()):
        try:
            pci_class = (device / "class").read_text().strip()
            driver = (device / "driver").resolve().name if (device / "driver").exists() else ""
            if not pci_class.startswith(_GPU_CLASSES) or driver != "vfio-pci":
                continue
            vendor = (device / "vendor").read_text().strip().removeprefix("0x")
            product = (device / "device").read_text().strip().removeprefix("0x")
        except OSError:
            continue
        found.append(RegisterGpu(address=device.name.lower(), model=f"pci {vendor}:{product}"))
    return found


def _token_id(token: str) -> str:
    parts = registration.split_token(token)
    return parts[0] if parts is not None else ""


def _load(record: Path) -> dict[str, str]:
    try:
        loaded = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {k: v for k, v in loaded.items() if isinstance(v, str)}


def _save(record: Path, values: dict[str, str]) -> None:
    record.parent.mkdir(parents=True, exist_ok=True)
    partial = record.with_suffix(".tmp")
    partial.write_text(json.dumps(values))
    partial.replace(record)


async def join(
    nats_url: str,
    token: str,
    stop: asyncio.Event,
    *,
    state_dir: Path,
    hostname: str | None = None,
    subject: str = registration.REGISTER_SUBJECT,
    timeout: float = 10.0,
    retry_every: float = 1.0,
) -> str | None:
    """The host id this daemon runs under, registering with ``token`` if not done yet.

    Waits (asking again) while no platform answers; None if ``stop`` is set meanwhile.
    Raises ``RegistrationRefused`` when the platform refuses the token.
    """
    record = state_dir / RECORD
    token_id = _token_id(token)
    saved = _load(record)
    if token_id and saved.get("token_id") == token_id and saved.get("host_id"):
        log.info("hostd: registered before with %s as %s", token_id, saved["host_id"])
        return saved["host_id"]
    request_id = saved.get("request_id") if saved.get("token_id") == token_id else None
    request_id = request_id or uuid.uuid4().hex
    if token_id:
        _save(record, {"token_id": token_id, "request_id": request_id})
    request = RegisterRequest(
        token=token,
        request_id=request_id,
        hostname=hostname or local_hostname(),
        capacity=capacity(state_dir),
        gpus=tuple(gpus()),
    )
    client = await nats.connect(nats_url, name="hostd-register", max_reconnect_attempts=-1)
    try:
        while not stop.is_set():
            try:
                message = await client.request(
                    subject, registration.encode(request), timeout=timeout
                )
                reply = registration.decode_reply(message.data)
            except (NoRespondersError, NatsTimeout, TimeoutError) as error:
                log.info("hostd: no platform answered the registration yet (%s)", error)
            else:
                if reply.ok and reply.host_id:
                    _save(
                        record,
                        {"token_id": token_id, "request_id": request_id, "host_id": reply.host_id},
                    )
                    log.info("hostd: registered as %s in %s", reply.host_id, reply.cluster_id)
                    return reply.host_id
                if reply.code not in RETRYABLE:
                    raise RegistrationRefused(reply)
                log.info("hostd: registration not decided yet (%s): %s", reply.code, reply.reason)
            await wait_any(stop, timeout=retry_every)
        return None
    finally:
        await client.drain()
