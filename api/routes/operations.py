"""Operations: what every mutation answers with, readable and long-pollable."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.routing import Router
from domain.errors import DomainError, NotFound
from domain.operations.operation import Operation
from gateways.waiting import wait_any
from projections.audit.log import AuditLog
from projections.resources.queries import DOCUMENTS

router = Router()
MAX_WAIT_SECONDS = 60.0
READ_MODELS = (DOCUMENTS, AuditLog.name)
"""What a finished operation waits for: resources by id and in lists, and the audit log."""


class OperationQuery(msgspec.Struct, kw_only=True):
    wait: Annotated[float, msgspec.Meta(ge=0, le=MAX_WAIT_SECONDS)] = 0.0
    """Seconds to wait for the operation to finish before answering."""


class OperationError(msgspec.Struct, kw_only=True):
    code: str
    detail: str | None


class OperationView(msgspec.Struct, kw_only=True):
    id: str
    action: str
    resource_id: str | None
    tenant_id: str | None
    status: str
    error: OperationError | None
    created_at: str
    finished_at: str | None
    deadline: str | None


@router.route(
    "GET",
    "/v1/operations/{id}",
    summary="An operation; ?wait=N long-polls until it ends",
    action="self:operation:read",
    query=OperationQuery,
    response=OperationView,
    kind="op",
    tags=("operations",),
)
async def get_operation(call: Call) -> web.Response:
    operation_id = call.request.match_info["id"]
    query: OperationQuery = call.query
    operation = await _visible(call, operation_id)
    if not operation.done and query.wait > 0:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + query.wait
        async with call.platform.store.appended() as appended:
            while not operation.done and loop.time() < deadline:
                appended.clear()
                operation = await _visible(call, operation_id)
                if operation.done:
                    break
                await wait_any(appended, timeout=max(0.0, deadline - loop.time()))
    if operation.done:
        await _readable(call, operation)
    view: dict[str, Any] = operation.view()
    return json_response(view, headers={"ETag": f'"{operation.version}"'})


async def _readable(call: Call, operation: Operation) -> None:
    """Report an operation finished only once the read models hold all it wrote.

    The operation is read from the store, the resources from the read models: without
    this, ``succeeded`` could reach a caller before its resource does, and another
    principal who is told of it (and knows no position) would read a 404. Everything
    the operation wrote was committed at or before its last event.
    """
    position = await call.platform.store.position_of(operation.id)
    for projection in READ_MODELS:
        await call.reach(projection, position)


async def _visible(call: Call, operation_id: str) -> Operation:
    try:
        operation = await call.platform.repository.get(operation_id, Operation)
    except NotFound:
        raise NotFound(f"{operation_id} does not exist", resource_id=operation_id) from None
    me = call.me
    if not me.is_platform and operation.tenant_id != me.tenant_id:
        await call.audit_denial(
            DomainError("another tenant's operation"), operation_id, foreign=True
        )
        raise NotFound(f"{operation_id} does not exist", resource_id=operation_id)
    return operation
