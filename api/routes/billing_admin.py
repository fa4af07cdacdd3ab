"""The platform's side of billing: every tenant's transactions, the month's financial
statement export, and what-if repricing of a period against a price book's draft."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.routes.billing_reads import (
    LEDGER,
    MEDIA,
    PageQuery,
    Position,
    TransactionPage,
    paged,
    reads,
    token_parts,
)
from api.routing import Router
from domain.billing.platform_statement import TenantStatement, platform_csv, platform_json
from domain.billing.price_book import version_label
from domain.billing.statement import Line
from domain.billing.what_if import TenantDifference, reprice
from domain.errors import NotFound

router = Router()

Period = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$")]
"""A statement period: a UTC month, ``2027-03``."""
BookId = Annotated[str, msgspec.Meta(pattern=r"^pbk-[0-9a-hjkmnp-tv-z]{26}$")]
TenantId = Annotated[str, msgspec.Meta(max_length=100)]


class AdminTransactionQuery(PageQuery, kw_only=True):
    tenant_id: TenantId | None = None
    """One tenant's transactions only."""
    entry: Literal["Recharged", "ChargesPosted", "HoldPosted", "Adjusted"] | None = None
    """One kind only: ``Recharged`` is the recharge record."""


class PlatformStatementQuery(msgspec.Struct, kw_only=True):
    period: Period
    format: Literal["json", "csv"] = "json"
    min_position: Position | None = None


class WhatIfQuery(msgspec.Struct, kw_only=True):
    period: Period
    price_book_id: BookId
    """The book whose draft version the period is priced again against."""
    min_position: Position | None = None


class CurrencyTotals(msgspec.Struct, kw_only=True):
    currency: str
    billed_minor: int
    corrections_minor: int
    lines: int


class PlatformStatement(msgspec.Struct, kw_only=True):
    period: str
    content_hash: str
    """SHA-256 of the canonical JSON of every line, in statement order."""
    tenants: list[TenantStatement]
    totals: list[CurrencyTotals]
    lines: list[Line]


class WhatIf(msgspec.Struct, kw_only=True):
    period: str
    price_book_id: str
    draft_version: str
    tenants: list[TenantDifference]
    """Every tenant billed from the book in the period, by tenant id."""
    billed_minor: int
    repriced_minor: int
    difference_minor: int


@router.route(
    "GET",
    "/v1/admin/billing/transactions",
    summary="Every tenant's transactions (postings on tenants' accounts), newest first",
    action="admin:billing:read",
    query=AdminTransactionQuery,
    response=TransactionPage,
    tags=("billing",),
)
async def list_all_transactions(call: Call) -> web.Response:
    query: AdminTransactionQuery = call.query
    await call.read_your_writes(LEDGER)
    before = token_parts(query.page_token, int, int)
    rows = await reads(call).transactions(
        call.platform.store.pool,
        tenant_id=query.tenant_id,
        limit=query.limit + 1,
        before=before,
        entry=query.entry,
    )
    return paged(call, rows, query.limit, lambda last: (str(last["position"]), str(last["seq"])))


@router.route(
    "GET",
    "/v1/admin/billing/statements",
    summary="The platform's financial statement of one month: every tenant's lines, JSON or CSV",
    action="admin:billing:read",
    query=PlatformStatementQuery,
    response=PlatformStatement,
    tags=("billing",),
    media_type=(MEDIA["json"], MEDIA["csv"]),
)
async def export_platform_statement(call: Call) -> web.Response:
    query: PlatformStatementQuery = call.query
    await call.read_your_writes(LEDGER)
    pool = call.platform.store.pool
    statements = await reads(call).period_statements(pool, query.period)
    if not statements:
        raise NotFound(f"no tenant has a statement for {query.period}")
    lines = await reads(call).period_lines(pool, query.period)
    if query.format == "csv":
        body = platform_csv(lines)
    else:
        tenants = [
            msgspec.convert(row, TenantStatement, from_attributes=False) for row in statements
        ]
        body = platform_json(query.period, tenants, lines)
    return web.Response(body=body, content_type=MEDIA[query.format])


@router.route(
    "GET",
    "/v1/admin/billing/what-if",
    summary="A period priced again against a price book's draft: per tenant, billed and repriced",
    action="admin:billing:read",
    query=WhatIfQuery,
    response=WhatIf,
    tags=("billing",),
)
async def what_if(call: Call) -> web.Response:
    query: WhatIfQuery = call.query
    await call.read_your_writes(LEDGER)
    pool = call.platform.store.pool
    book = await call.platform.documents.get(pool, query.price_book_id)
    if book is None or book.kind != "pbk":
        raise NotFound(f"{query.price_book_id} does not exist", resource_id=query.price_book_id)
    draft = book.view.get("draft")
    if draft is None:
        raise NotFound(f"{query.price_book_id} has no draft to price the period against")
    found = reprice(await reads(call).period_lines(pool, query.period), book.view, draft)
    billed = sum(d.billed_minor for d in found)
    again = sum(d.repriced_minor for d in found)
    return json_response(
        WhatIf(
            period=query.period,
            price_book_id=book.resource_id,
            draft_version=version_label(book.resource_id, 0),
            tenants=found,
            billed_minor=billed,
            repriced_minor=again,
            difference_minor=again - billed,
        )
    )
