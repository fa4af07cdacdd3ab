"""Liveness from memory, readiness from the dependencies.

``/healthz`` touches nothing outside the process, so it answers at once even while the
database hangs or the pool is taken (an orchestrator must not restart a live process for
its database's sake); ``/readyz`` says whether this process can serve now: the store
answers within a second and NATS is connected.
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from api.state import PLATFORM

routes = web.RouteTableDef()
READY_TIMEOUT = 1.0


class Health(msgspec.Struct):
    status: str
    nats: str


class Readiness(msgspec.Struct):
    status: str
    database: str
    nats: str
    position: int


def _json(body: msgspec.Struct, status: int) -> web.Response:
    return web.Response(
        status=status, body=msgspec.json.encode(body), content_type="application/json"
    )


@routes.get("/healthz")
async def health(request: web.Request) -> web.Response:
    platform = request.app[PLATFORM]
    return _json(Health("ok", "ok" if platform.nats.is_connected else "disconnected"), 200)


@routes.get("/readyz")
async def ready(request: web.Request) -> web.Response:
    platform = request.app[PLATFORM]
    database, position = "ok", 0
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            position = await platform.store.last_position()
    except TimeoutError:
        database = "timeout"
    except Exception as error:  # a readiness check reports failures instead of raising them
        database = f"error: {type(error).__name__}"
    nats = "ok" if platform.nats.is_connected else "disconnected"
    ready = database == "ok" and nats == "ok"
    return _json(
        Readiness("ok" if ready else "unready", database, nats, position), 200 if ready else 503
    )
