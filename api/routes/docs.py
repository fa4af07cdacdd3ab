"""The API describing itself: the OpenAPI document and its readable reference page.

Both are public and listed in the document themselves, so a client that finds one finds
the other. They are built once per process: the route table does not change at run time.
"""

from __future__ import annotations

import functools
from typing import Any

import msgspec
from aiohttp import web

from api.call import Call
from api.routing import Router

router = Router()


@functools.cache
def document() -> dict[str, Any]:
    from api.app import endpoints  # the app imports this module: look it up when first asked
    from api.openapi import build_document

    return build_document(endpoints())


@functools.cache
def _document_bytes() -> bytes:
    return msgspec.json.encode(document())


@functools.cache
def _reference_html() -> str:
    from api.reference import render

    return render(document())


@router.route(
    "GET",
    "/v1/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    action=None,
    public=True,
    response=dict[str, Any],
    tags=("docs",),
)
async def get_openapi(call: Call) -> web.Response:
    return web.Response(body=_document_bytes(), content_type="application/json")


@router.route(
    "GET",
    "/v1/docs",
    summary="The API reference, readable in a browser",
    action=None,
    public=True,
    response=str,
    tags=("docs",),
    media_type="text/html",
)
async def get_reference(call: Call) -> web.Response:
    return web.Response(text=_reference_html(), content_type="text/html")
