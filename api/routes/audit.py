"""The audit log: every command and its outcome, filtered and paged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.routing import Router
from domain.errors import ValidationFailed

router = Router()


class AuditQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 100
    page_token: str | None = None
    actor: str | None = None
    action: str | None = None
    resource: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    tenant_id: str | None = None
    """Platform staff only: one tenant's entries."""
    min_position: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None
    """Wait until the log includes this position (read your own writes)."""


class AuditEvent(msgspec.Struct, kw_only=True):
    operation_id: str
    occurred_at: datetime
    tenant_id: str | None
    actor_kind: str
    actor_id: str
    via_key: str | None
    action: str
    resource_id: str | None
    request_id: str | None
    source: str | None
    outcome: str
    error_code: str | None
    error_detail: str | None
    position: int


class AuditPage(msgspec.Struct, kw_only=True):
    items: list[AuditEvent]
    next_page_token: str | None


_FILTERS = {
    "actor": "actor_id",
    "action": "action",
    "resource": "resource_id",
    "outcome": "outcome",
}


@router.route(
    "GET",
    "/v1/audit-events",
    summary="Who did what, when, from where, and how it ended",
    action="audit:event:read",
    query=AuditQuery,
    response=AuditPage,
    tags=("audit",),
)
async def list_audit_events(call: Call) -> web.Response:
    query: AuditQuery = call.query
    me = call.me
    await call.read_your_writes("audit_log")
    args: list[Any] = []
    where: list[str] = []
    tenant = query.tenant_id if me.is_platform else me.tenant_id
    if query.tenant_id is not None and not me.is_platform and query.tenant_id != me.tenant_id:
        raise ValidationFailed("tenant_id filters are for platform staff")
    if tenant is not None:
        args.append(tenant)
        where.append(f"tenant_id = ${len(args)}")
    for name, column in _FILTERS.items():
        value = getattr(query, name)
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if query.since is not None:
        args.append(query.since)
        where.append(f"occurred_at >= ${len(args)}")
    if query.until is not None:
        args.append(query.until)
        where.append(f"occurred_at < ${len(args)}")
    if query.page_token:
        try:
            before = int(query.page_token)
        except ValueError:
            raise ValidationFailed("page_token is not one this API gave out") from None
        args.append(before)
        where.append(f"position < ${len(args)}")
    args.append(query.limit + 1)
    table = f"{call.platform.settings.schema}.audit_events"
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    rows = await call.platform.store.pool.fetch(
        f"SELECT * FROM {table} {clause} ORDER BY position DESC LIMIT ${len(args)}",  # noqa: S608
        *args,
    )
    items = [AuditEvent(**dict(r)) for r in rows[: query.limit]]
    token = str(items[-1].position) if len(rows) > query.limit else None
    return json_response(AuditPage(items=items, next_page_token=token))
