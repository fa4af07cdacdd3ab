"""List endpoints' shared query parameters and the one way they read a page."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call, decode_page_token
from domain.errors import ValidationFailed

SORTS = frozenset({"id", "-id", "name", "-name"})


class ListQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    page_token: str | None = None
    sort: Literal["id", "-id", "name", "-name"] = "id"
    """``id`` (creation order), ``name``; a leading ``-`` reverses."""
    min_position: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    """Wait until the read model includes this position (read your own writes)."""


class Accepted(msgspec.Struct, kw_only=True):
    """The answer to every mutation: the operation to follow and the position written."""

    operation_id: str
    resource_id: str | None
    position: int


async def list_kind(
    call: Call,
    kind: str,
    query: ListQuery,
    *,
    tenant_id: str | None,
    filters: tuple[str, ...] = (),
    projects: tuple[str, ...] | None = None,
    include_public: bool = False,
) -> web.Response:
    """One page of ``kind`` documents; ``tenant_id`` None lists all tenants' (staff only)."""
    if query.sort not in SORTS:
        raise ValidationFailed(f"sort must be one of {sorted(SORTS)}")
    await call.read_your_writes()
    wanted = {f: getattr(query, f) for f in filters if getattr(query, f, None) is not None}
    page = await call.platform.documents.page(
        call.platform.store.pool,
        kind=kind,
        tenant_id=tenant_id,
        projects=projects,
        filters=wanted,
        sort=query.sort.lstrip("-"),
        descending=query.sort.startswith("-"),
        limit=query.limit,
        after=decode_page_token(query.page_token),
        include_public=include_public,
    )
    return call.page(page, query.limit)
