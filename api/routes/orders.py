"""Prepaid orders: the tenant's own, and every tenant's for the platform's accountants."""

from __future__ import annotations

from datetime import datetime

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.routes.billing_reads import PageQuery, paged, token_parts
from api.routing import Router
from projections.billing import queries
from projections.billing.orders import BillingOrders

router = Router()


class Order(msgspec.Struct, kw_only=True):
    order_id: str
    tenant_id: str
    kind: str
    """``new`` (a first term), ``renewal`` or ``upgrade`` (the rest of a term, prorated)."""
    subscription_id: str | None
    resource_id: str | None
    term: str | None
    amount_minor: int
    currency: str
    status: str
    """``held`` (its money reserved), ``paid`` or ``voided``."""
    placed_at: datetime
    settled_at: datetime | None
    reason: str | None
    position: int


class OrderPage(msgspec.Struct, kw_only=True):
    items: list[Order]
    next_page_token: str | None


class AdminOrderQuery(PageQuery, kw_only=True):
    tenant_id: str | None = None


async def _page(call: Call, tenant_id: str | None) -> web.Response:
    query: PageQuery = call.query
    await call.read_your_writes(BillingOrders.name)
    before = token_parts(query.page_token, int, str)
    rows = await queries.orders(
        call.platform.store.pool,
        call.platform.settings.schema,
        tenant_id=tenant_id,
        limit=query.limit + 1,
        before=before[0] if before else None,
    )
    return paged(call, rows, query.limit, lambda last: (str(last["position"]), last["order_id"]))


@router.route(
    "GET",
    "/v1/billing/orders",
    summary="The caller's prepaid orders, newest first",
    action="billing:order:read",
    query=PageQuery,
    response=OrderPage,
    tags=("billing",),
)
async def my_orders(call: Call) -> web.Response:
    if call.me.tenant_id is None:  # staff: see /v1/admin/billing/orders
        return json_response({"items": [], "next_page_token": None})
    return await _page(call, call.me.tenant_id)


@router.route(
    "GET",
    "/v1/admin/billing/orders",
    summary="Every tenant's prepaid orders, newest first",
    action="admin:billing:read",
    query=AdminOrderQuery,
    response=OrderPage,
    tags=("billing",),
)
async def all_orders(call: Call) -> web.Response:
    return await _page(call, call.query.tenant_id)
