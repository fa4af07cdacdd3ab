"""Is a PostgreSQL, a JetStream-enabled NATS or a libvirtd usable at this URL right now?"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from pathlib import Path

import asyncpg
import nats

_PATIENCE_SECONDS = 2.0
"""How long one probe waits; callers wanting less wrap it in ``asyncio.timeout``."""


async def postgres_answers(url: str) -> bool:
    """True if we can log in at ``url`` (a DSN) and run a query."""
    try:
        async with asyncio.timeout(_PATIENCE_SECONDS):
            connection = await asyncpg.connect(url, timeout=_PATIENCE_SECONDS)
            try:
                await connection.fetchval("SELECT 1")
            finally:
                await connection.close()
    except Exception:  # any failure means "not usable here", which is the answer we want
        return False
    return True


async def _ignore(_: Exception) -> None:
    """Failed attempts are expected while probing; nats-py would log each one."""


async def jetstream_answers(url: str) -> bool:
    """True if the NATS server at ``url`` accepts us and its JetStream answers."""
    try:
        async with asyncio.timeout(_PATIENCE_SECONDS):
            client = await nats.connect(
                url,
                connect_timeout=round(_PATIENCE_SECONDS),
                allow_reconnect=False,
                max_reconnect_attempts=1,  # 0 would mean "retry forever"
                reconnect_time_wait=0.05,
                error_cb=_ignore,
            )
            try:
                await client.jetstream(timeout=_PATIENCE_SECONDS).account_info()
            finally:
                await client.close()
    except Exception:  # any failure means "not usable here", which is the answer we want
        return False
    return True


async def libvirt_answers(uri: str, *, virsh: str = "virsh", timeout: float = 10.0) -> bool:
    """True if ``virsh -c uri version`` succeeds within ``timeout`` seconds.

    A libvirtd's first answer waits for its probe of QEMU (seconds): hence the long default.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            *(virsh, "-c", uri, "version"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    except OSError:
        return False
    try:
        async with asyncio.timeout(timeout):
            return await process.wait() == 0
    except TimeoutError:
        return False
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def unix_socket_answers(path: Path) -> bool:
    """True if something accepts connections on the UNIX socket at ``path``."""
    try:
        async with asyncio.timeout(_PATIENCE_SECONDS):
            _, writer = await asyncio.open_unix_connection(str(path))
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
