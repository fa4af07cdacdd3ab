"""Every answer carries a media type its operation declares, and every declared one is real.

A generated client picks its decoder by the declared media types: one the document leaves
out (the statements' CSV and PDF once) crashes it. The exports are checked in every format
they take, and every simple read (a GET with no path parameter) as staff and as a tenant.
"""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

import pytest

from api.app import endpoints
from api.openapi import build_document
from api.routing import Endpoint
from tests.api.conftest import Api, Caller
from tests.api.test_billing_admin import closed_march

PROBLEM_JSON = "application/problem+json"
STREAMS = {"/v1/events"}
"""Endless: its answer never ends; its media type has a test of its own."""


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    return {"billing_settle_seconds": 0}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document(endpoints())


def declared(document: dict[str, Any], endpoint: Endpoint, status: int) -> set[str]:
    operation = document["paths"][endpoint.path][endpoint.method.lower()]
    response = operation["responses"].get(str(status))
    assert response is not None, (endpoint.method, endpoint.path, status)
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return set(response["content"])


async def sent_as_declared(
    document: dict[str, Any], caller: Caller, endpoint: Endpoint, path: str
) -> tuple[int, str]:
    """Call it; its answer's status and media type, both as the document says."""
    response = await caller.get(path)
    await response.read()
    media = declared(document, endpoint, response.status)
    assert response.content_type in media, (path, response.status, response.content_type, media)
    if response.status >= 400:
        assert response.content_type == PROBLEM_JSON
    return response.status, response.content_type


def _exports() -> list[Endpoint]:
    found = [e for e in endpoints() if e.query and "format" in e.query.__struct_fields__]
    assert {e.path for e in found} == {
        "/v1/tenants/{id}/statements/{period}",
        "/v1/admin/billing/statements",
    }
    return found


def _formats(endpoint: Endpoint) -> tuple[str, ...]:
    assert endpoint.query is not None
    return get_args(get_type_hints(endpoint.query)["format"])


async def test_each_statement_export_declares_and_sends_every_format(
    api: Api, document: dict[str, Any]
) -> None:
    _, acme, _ = await closed_march(api)
    for endpoint in _exports():
        formats = _formats(endpoint)
        path = endpoint.path.replace("{id}", str(acme.tenant_id)).replace("{period}", "2027-03")
        if "{" not in endpoint.path:
            path += "?period=2027-03"
        sent = set()
        for caller in (acme, api.admin) if "/admin/" not in path else (api.admin,):
            for form in formats:
                joiner = "&" if "?" in path else "?"
                status, media = await sent_as_declared(
                    document, caller, endpoint, f"{path}{joiner}format={form}"
                )
                assert status == 200, (path, form)
                sent.add(media)
        # every media type it declares is one it sends, one per format
        assert sent == declared(document, endpoint, 200) and len(sent) == len(formats)


async def test_every_simple_read_answers_a_media_type_it_declares(
    api: Api, document: dict[str, Any]
) -> None:
    owner = await api.tenant()
    await api.settled(await owner.post("/v1/projects", json={"name": "listed"}))
    answered = []
    for endpoint in endpoints():
        if endpoint.method != "GET" or "{" in endpoint.path or endpoint.path in STREAMS:
            continue
        for caller in (api.admin, owner):
            answered.append(await sent_as_declared(document, caller, endpoint, endpoint.path))
    medias = {media for status, media in answered if status == 200}
    assert {"application/json", "text/html", "text/plain"} <= medias
    assert sum(1 for status, _ in answered if status == 200) > 40
