"""Telling "PostgreSQL cannot be reached" apart from every other failure.

The API answers the first with 503 and Retry-After (the caller should come back) and the
rest with 500 (a bug to fix): asyncpg raises the first as OS errors, timeouts, connection
errors and a few server states, from wherever the pool happened to be used.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.exceptions import (
    AdminShutdownError,
    CannotConnectNowError,
    CrashShutdownError,
    TooManyConnectionsError,
)

CONNECT_TIMEOUT_SECONDS = 10.0
"""How long opening one connection may take before the store counts as unreachable."""

_SERVER_AWAY = (
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or does not exist
    AdminShutdownError,
    CrashShutdownError,
    CannotConnectNowError,  # starting up or shutting down
    TooManyConnectionsError,
)


class StoreUnreachable(ConnectionError):
    """No connection to PostgreSQL could be opened (refused, unresolvable, timed out)."""


async def connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    """``asyncpg.connect`` for the pool, with its failures to reach the server typed.

    A refused or timed-out connect surfaces as a bare ``OSError``/``TimeoutError``, which
    a file or an HTTP call could raise as well; typed here, at the one place that knows it
    was PostgreSQL being dialled.
    """
    kwargs.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
    try:
        return await asyncpg.connect(*args, **kwargs)
    except (OSError, TimeoutError) as error:
        raise StoreUnreachable(f"PostgreSQL cannot be reached: {error}") from error


def store_unavailable(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) says the store is away, not that we erred."""
    seen: set[int] = set()
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (StoreUnreachable, *_SERVER_AWAY)):
            return True
        if isinstance(current, asyncpg.InterfaceError) and "connection is closed" in str(current):
            return True
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return False
