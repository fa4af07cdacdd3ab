"""Is a PostgreSQL or a JetStream-enabled NATS usable at this URL right now?"""

from __future__ import annotations

import asyncio

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
