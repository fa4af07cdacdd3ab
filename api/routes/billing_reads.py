"""The tenant's billing pages: transactions, charge lines, daily usage and statements.

Each read is of the caller's own tenant and of nothing else; platform staff, who belong to
no tenant, read the platform's side under ``/v1/admin/billing``. A statement is exported
by its tenant's id and period, so that naming another tenant's is refused like naming a
missing one (and audited), as every ``{id}`` path is.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web

from api.call import Call, decode_page_token, encode_page_token, json_response
from api.routing import Router
from domain.billing.statement import Line
from domain.errors import NotFound, ValidationFailed
from gateways.billing.pdf import statement_pdf
from projections.billing.queries import BillingQueries
from projections.billing.reads import BillingReads

router = Router()

LEDGER = "billing_ledger"
PERIOD = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")
Limit = Annotated[int, msgspec.Meta(ge=1, le=500)]
Position = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
ResourceId = Annotated[str, msgspec.Meta(max_length=100)]
MEDIA = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


class PageQuery(msgspec.Struct, kw_only=True):
    limit: Limit = 50
    page_token: str | None = None
    min_position: Position | None = None
    """Wait until the ledger includes this position (read your own writes)."""


class ChargeQuery(PageQuery, kw_only=True):
    resource_id: ResourceId | None = None
    since: datetime | None = None
    """Lines that end after this time."""
    until: datetime | None = None
    """Lines that start before this time."""


class DailyQuery(PageQuery, kw_only=True):
    since: date | None = None
    """The first UTC day (inclusive)."""
    until: date | None = None
    """The last UTC day (exclusive)."""


class ExportQuery(msgspec.Struct, kw_only=True):
    format: Literal["json", "csv", "pdf"] = "json"
    """``pdf`` is rendered from the JSON (the document its hash speaks for)."""
    min_position: Position | None = None


class Transaction(msgspec.Struct, kw_only=True):
    position: int
    seq: int
    tenant_id: str
    ledger_account: str
    entry: str
    """The ledger event: ``ChargesPosted``, ``Recharged`` or ``Adjusted``."""
    amount_minor: int
    """As the tenant sees it: a recharge or credit is positive, a charge negative."""
    currency: str
    charge_id: str | None
    occurred_at: datetime


class TransactionPage(msgspec.Struct, kw_only=True):
    items: list[Transaction]
    next_page_token: str | None


class ChargePage(msgspec.Struct, kw_only=True):
    items: list[Line]
    next_page_token: str | None


class DailyUsage(msgspec.Struct, kw_only=True):
    day: date
    resource_id: str
    currency: str
    amount_minor: int
    lines: int


class DailyPage(msgspec.Struct, kw_only=True):
    items: list[DailyUsage]
    next_page_token: str | None


class StatementSummary(msgspec.Struct, kw_only=True):
    tenant_id: str
    period: str
    currency: str
    status: str
    """``open`` or ``closed`` (frozen under its content hash)."""
    billed_minor: int
    lines: int
    content_hash: str | None
    export: str
    """Where its JSON (or ``?format=csv``) export is."""


class StatementPage(msgspec.Struct, kw_only=True):
    items: list[StatementSummary]
    next_page_token: str | None


class Totals(msgspec.Struct, kw_only=True):
    billed_minor: int
    corrections_minor: int
    lines: int


class StatementDocument(msgspec.Struct, kw_only=True):
    tenant_id: str
    period: str
    status: str
    currency: str
    content_hash: str | None
    totals: Totals
    lines: list[Line]


def reads(call: Call) -> BillingReads:
    return BillingReads(call.platform.settings.schema)


def token_parts(token: str | None, *kinds: type) -> tuple[Any, ...] | None:
    """A page token's values back in their types; 422 for one this API did not give out."""
    after = decode_page_token(token)
    if after is None:
        return None
    try:
        return tuple(
            kind.fromisoformat(value) if kind in (date, datetime) else kind(value)
            for kind, value in zip(kinds, after, strict=True)
        )
    except ValueError:
        raise ValidationFailed("page_token is not one this API gave out") from None


def paged(
    call: Call, items: Sequence[Any], limit: int, key: Callable[[Any], tuple[str, str]]
) -> web.Response:
    """``items`` (one more than ``limit`` when more follow) as a page with its next token.

    ``key`` gives the sort key of an item, the next page's starting point.
    """
    token = encode_page_token(key(items[limit - 1])) if len(items) > limit else None
    headers = {}
    if token:
        query = dict(call.request.query)
        query.update(page_token=token, limit=str(limit))
        headers["Link"] = f'<{call.request.rel_url.with_query(query)}>; rel="next"'
    return json_response({"items": items[:limit], "next_page_token": token}, headers=headers)


def export_path(tenant_id: str, period: str) -> str:
    return f"/v1/tenants/{tenant_id}/statements/{period}"


@router.route(
    "GET",
    "/v1/billing/transactions",
    summary="The caller's transactions: every posting on its own account, newest first",
    action="billing:transaction:read",
    query=PageQuery,
    response=TransactionPage,
    tags=("billing",),
)
async def list_transactions(call: Call) -> web.Response:
    query: PageQuery = call.query
    await call.read_your_writes(LEDGER)
    tenant_id = call.me.tenant_id
    if tenant_id is None:  # staff: see /v1/admin/billing/transactions
        return json_response({"items": [], "next_page_token": None})
    before = token_parts(query.page_token, int, int)
    rows = await reads(call).transactions(
        call.platform.store.pool, tenant_id=tenant_id, limit=query.limit + 1, before=before
    )
    return paged(call, rows, query.limit, lambda last: (str(last["position"]), str(last["seq"])))


@router.route(
    "GET",
    "/v1/billing/charges",
    summary="The caller's charge lines (consumption details), newest first",
    action="billing:charge:read",
    query=ChargeQuery,
    response=ChargePage,
    tags=("billing",),
)
async def list_charges(call: Call) -> web.Response:
    query: ChargeQuery = call.query
    await call.read_your_writes(LEDGER)
    tenant_id = call.me.tenant_id
    if tenant_id is None:
        return json_response({"items": [], "next_page_token": None})
    before = token_parts(query.page_token, datetime, str)
    lines = await reads(call).charges(
        call.platform.store.pool,
        tenant_id=tenant_id,
        limit=query.limit + 1,
        resource_id=query.resource_id,
        since=query.since,
        until=query.until,
        before=before,
    )
    return paged(call, lines, query.limit, lambda last: (last.start, last.charge_id))


@router.route(
    "GET",
    "/v1/billing/usage/daily",
    summary="What each of the caller's resources cost on each UTC day, newest day first",
    action="billing:usage:read",
    query=DailyQuery,
    response=DailyPage,
    tags=("billing",),
)
async def daily_usage(call: Call) -> web.Response:
    query: DailyQuery = call.query
    await call.read_your_writes(LEDGER)
    tenant_id = call.me.tenant_id
    if tenant_id is None:
        return json_response({"items": [], "next_page_token": None})
    after = token_parts(query.page_token, date, str)
    rows = await reads(call).daily(
        call.platform.store.pool,
        tenant_id=tenant_id,
        limit=query.limit + 1,
        since=query.since,
        until=query.until,
        after=after,
    )
    return paged(
        call, rows, query.limit, lambda last: (last["day"].isoformat(), last["resource_id"])
    )


@router.route(
    "GET",
    "/v1/billing/statements",
    summary="The caller's monthly statements: status, total, lines and hash, newest first",
    action="billing:statement:read",
    query=PageQuery,
    response=StatementPage,
    tags=("billing",),
)
async def list_statements(call: Call) -> web.Response:
    query: PageQuery = call.query
    await call.read_your_writes(LEDGER)
    tenant_id = call.me.tenant_id
    if tenant_id is None:
        return json_response({"items": [], "next_page_token": None})
    before = token_parts(query.page_token, str, str)
    rows = await reads(call).statements(
        call.platform.store.pool,
        tenant_id=tenant_id,
        limit=query.limit + 1,
        before=None if before is None else before[0],
    )
    items = [{**row, "export": export_path(tenant_id, row["period"])} for row in rows]
    return paged(call, items, query.limit, lambda last: (last["period"], tenant_id))


@router.route(
    "GET",
    "/v1/tenants/{id}/statements/{period}",
    summary="One month's statement of the caller's tenant: JSON (totals, hash), FOCUS CSV or PDF",
    action="billing:statement:read",
    query=ExportQuery,
    response=StatementDocument,
    kind="tnt",
    tags=("billing",),
    media_type=(MEDIA["json"], MEDIA["csv"], MEDIA["pdf"]),
)
async def export_statement(call: Call) -> web.Response:
    query: ExportQuery = call.query
    tenant = await call.document(call.request.match_info["id"], "tnt", "billing:statement:read")
    period = call.request.match_info["period"]
    await call.read_your_writes(LEDGER)
    body = None
    if PERIOD.fullmatch(period):
        body = await BillingQueries(call.platform.settings.schema).export(
            call.platform.store.pool,
            tenant.resource_id,
            period,
            "csv" if query.format == "csv" else "json",
        )
    if body is None:
        raise NotFound(f"{tenant.resource_id} has no statement for {period[:20]!r}")
    if query.format == "pdf":
        body = statement_pdf(body)
    return web.Response(body=body, content_type=MEDIA[query.format])
