"""The aiohttp application: middlewares and routes, given an opened platform."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from api import health
from api.problems import problems_middleware
from api.state import PLATFORM

if TYPE_CHECKING:
    from api.bootstrap import Platform


def build_app(platform: Platform) -> web.Application:
    app = web.Application(middlewares=[problems_middleware], client_max_size=4 * 1024**2)
    app[PLATFORM] = platform
    app.add_routes(health.routes)
    return app
