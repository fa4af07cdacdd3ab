"""The aiohttp application: middlewares and routes, given an opened platform."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from api import health
from api.problems import problems_middleware
from api.routes import (
    apikeys,
    audit,
    billing,
    billing_admin,
    billing_reads,
    clusters,
    config,
    docs,
    events,
    flavors,
    hosts,
    imagepools,
    images,
    instances,
    ippools,
    join_tokens,
    metrics,
    operations,
    orders,
    price_books,
    quotas,
    regions,
    roles,
    server_groups,
    session,
    subscriptions,
    tenants,
    users,
    webhooks,
)
from api.routing import Endpoint
from api.state import PLATFORM

if TYPE_CHECKING:
    from api.bootstrap import Platform


def build_app(platform: Platform) -> web.Application:
    app = web.Application(middlewares=[problems_middleware], client_max_size=4 * 1024**2)
    app[PLATFORM] = platform
    app.add_routes(health.routes)
    for module in ROUTE_MODULES:
        module.router.install(app)
    return app


ROUTE_MODULES = (
    metrics,
    images,
    instances,
    server_groups,
    session,
    tenants,
    users,
    apikeys,
    roles,
    operations,
    audit,
    quotas,
    events,
    docs,
    regions,
    clusters,
    hosts,
    join_tokens,
    ippools,
    imagepools,
    flavors,
    config,
    webhooks,
    price_books,
    billing,
    billing_reads,
    billing_admin,
    subscriptions,
    orders,
)


def endpoints() -> list[Endpoint]:
    """Every declared endpoint: for the OpenAPI document and the generated tests."""
    return [e for module in ROUTE_MODULES for e in module.router.endpoints]
