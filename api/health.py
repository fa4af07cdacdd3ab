"""Liveness and readiness: does this process reach its database and its bus?"""

from __future__ import annotations

import msgspec
from aiohttp import web

from api.state import PLATFORM

routes = web.RouteTableDef()


class Health(msgspec.Struct):
    status: str
    database: str
    nats: str
    position: int


@routes.get("/healthz")
async def health(request: web.Request) -> web.Response:
    platform = request.app[PLATFORM]
    database = "ok"
    position = 0
    try:
        position = await platform.store.last_position()
    except Exception as error:  # a health check reports failures instead of raising them
        database = f"error: {type(error).__name__}"
    nats = "ok" if platform.nats.is_connected else "disconnected"
    healthy = database == "ok" and nats == "ok"
    body = Health("ok" if healthy else "degraded", database, nats, position)
    return web.Response(
        status=200 if healthy else 503,
        body=msgspec.json.encode(body),
        content_type="application/json",
    )
