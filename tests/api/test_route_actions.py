"""Every route declares the action it needs, except a short, reviewed list of public ones.

The routers are found by walking every module of ``api.routes`` (not the app's list, which
a new module could be left out of), and the built application's own route table is checked
too, so a handler added beside the routers (as ``/healthz`` is) cannot slip through.
"""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from aiohttp import web

import api.routes
from api.app import build_app
from api.routing import Endpoint, Router

PUBLIC = {
    ("POST", "/v1/auth/login"),  # no one is signed in yet
    ("GET", "/healthz"),  # probes from orchestrators, with no credentials
    ("GET", "/readyz"),
    ("GET", "/v1/openapi.json"),  # the contract itself, for client generators
    ("GET", "/v1/docs"),  # the same, readable in a browser
}
"""Reviewed: these answer callers with no credentials at all. Add to it only with review."""


def every_endpoint() -> list[Endpoint]:
    found: list[Endpoint] = []
    for module_info in pkgutil.iter_modules(api.routes.__path__, "api.routes."):
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if isinstance(value, Router):
                found.extend(value.endpoints)
    return found


def test_every_routed_endpoint_declares_its_action() -> None:
    endpoints = every_endpoint()
    assert len(endpoints) > 100, "the walk found the routers"
    undeclared = [
        f"{e.method} {e.path}"
        for e in endpoints
        if (e.method, e.path) not in PUBLIC and (e.public or not e.action)
    ]
    assert undeclared == [], f"routes without an action, and not on the public list: {undeclared}"
    public = {(e.method, e.path) for e in endpoints if e.public}
    assert public <= PUBLIC


def test_the_app_serves_nothing_beside_them() -> None:
    declared = {(e.method, e.path) for e in every_endpoint()}
    app = build_app(None)  # type: ignore[arg-type]  # only its route table is read
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert served - declared <= PUBLIC, served - declared - PUBLIC


def test_a_router_refuses_a_signed_in_route_without_an_action() -> None:
    router = Router()
    with pytest.raises(TypeError, match="declares their action"):
        router.route("GET", "/v1/anything", summary="x", action=None)

    async def handler(_: object) -> web.Response:
        return web.Response()

    router.route("GET", "/v1/public", summary="x", action=None, public=True)(handler)
