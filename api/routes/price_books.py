"""Price books (admin): per region or platform-wide, versioned, effective-dated prices."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import references
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body, Name
from domain.billing.price_book import PriceBook, book_id
from domain.errors import Conflict, ValidationFailed

router = Router()
TERMS = frozenset({"monthly", "annual"})

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9]{0,11}-[0-9a-hjkmnp-tv-z]{26}$")]
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
Dimension = Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,32}(:[a-z0-9_-]{1,40})?$")]
Price = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,12}(\.[0-9]{1,9})?$")]
Prices = Annotated[dict[Dimension, Price], msgspec.Meta(max_length=64)]


Percent = Annotated[str, msgspec.Meta(pattern=r"^[0-9]{1,3}(\.[0-9]{1,4})?$")]
Term = Annotated[str, msgspec.Meta(pattern="^[a-z]{1,12}$")]
"""A prepaid term's name; which ones exist is the handler's check (``TERMS``)."""


class TenantPrices(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    discount_percent: Percent = "0"
    prices: Prices = {}
    """This tenant's own prices, over the book's."""


Overrides = Annotated[dict[Id, TenantPrices], msgspec.Meta(max_length=1000)]


class CreatePriceBook(Body, kw_only=True, forbid_unknown_fields=True):
    name: Name
    currency: Currency
    region_id: Id | None = None
    """The region it prices; none for the platform-wide book other regions fall back on."""


class PublishVersion(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prices: Prices
    """Minor units per unit-hour of each dimension (``vcpu``, ``memory_gb``,
    ``disk_gb:<class>``, ``gpu``, ``external_ip``, ``bandwidth_mbps``, ...)."""
    effective_from: datetime | None = None
    """When it takes effect: now or later, after the latest version. Now when left out."""
    tenant_overrides: Overrides = {}
    term_discounts: Annotated[dict[Term, Percent], msgspec.Meta(max_length=2)] = {}
    """Percent off per prepaid term: ``monthly`` and ``annual`` (checked by the handler: a
    JSON Schema ``propertyNames`` enum is not honoured by every client generator)."""
    """Percent off prepaid terms."""


class SaveDraft(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    prices: Prices
    tenant_overrides: Overrides = {}


class PriceVersion(msgspec.Struct, kw_only=True):
    number: int
    effective_from: str | None
    prices: dict[str, str]
    tenant_overrides: dict[str, TenantPrices]
    term_discounts: dict[str, str] = {}


class PriceBookView(msgspec.Struct, kw_only=True):
    id: str
    name: str
    currency: str
    region_id: str | None
    versions: list[PriceVersion]
    draft: PriceVersion | None


class PriceBookPage(msgspec.Struct, kw_only=True):
    items: list[PriceBookView]
    next_page_token: str | None


def _overrides(given: dict[str, TenantPrices]) -> dict[str, dict[str, Any]]:
    return {t: msgspec.structs.asdict(o) for t, o in given.items()}


@router.route(
    "POST",
    "/v1/admin/price-books",
    summary="Open a price book for a region (or the platform-wide one)",
    action="admin:price_book:create",
    body=CreatePriceBook,
    response=Accepted,
    status=202,
    tags=("billing",),
)
async def create_price_book(call: Call) -> web.Response:
    body: CreatePriceBook = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        if body.region_id is not None:
            await references.region(unit, body.region_id)
        existing = await unit.find(book_id(body.region_id), PriceBook)
        if existing is not None:
            raise Conflict("that region has a price book already", resource_id=existing.id)
        book = PriceBook.open(body.name, body.currency, body.region_id)
        unit.add(book)
        return Decided(resource_id=book.id)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/admin/price-books",
    summary="List the price books",
    action="admin:price_book:read",
    query=ListQuery,
    response=PriceBookPage,
    tags=("billing",),
)
async def list_price_books(call: Call) -> web.Response:
    return await list_kind(call, "pbk", call.query, tenant_id=None, filters=())


@router.route(
    "GET",
    "/v1/admin/price-books/{id}",
    summary="One price book with every version",
    action="admin:price_book:read",
    response=PriceBookView,
    kind="pbk",
    tags=("billing",),
)
async def get_price_book(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "pbk", "admin:price_book:read")
    )


@router.route(
    "POST",
    "/v1/admin/price-books/{id}/actions/publish",
    summary="Publish a new version (in force from its effective time; never edited after)",
    action="admin:price_book:update",
    body=PublishVersion,
    response=Accepted,
    status=202,
    kind="pbk",
    tags=("billing",),
)
async def publish_version(call: Call) -> web.Response:
    body: PublishVersion = call.body
    price_book_id = call.request.match_info["id"]

    unknown = sorted(set(body.term_discounts) - TERMS)
    if unknown:
        raise ValidationFailed(
            f"term_discounts takes {', '.join(sorted(TERMS))}, not {unknown[0]!r}",
            field="term_discounts",
        )

    async def decide(unit: UnitOfWork) -> Decided:
        book = await unit.get(price_book_id, PriceBook, checked=True)
        book.publish(
            dict(body.prices),
            body.effective_from,
            _overrides(body.tenant_overrides),
            {str(term): value for term, value in body.term_discounts.items()},
        )
        return Decided(resource_id=book.id, body={"version": len(book.versions)})

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/price-books/{id}/actions/save-draft",
    summary="Keep a draft version for what-if repricing (never in force)",
    action="admin:price_book:update",
    body=SaveDraft,
    response=Accepted,
    status=202,
    kind="pbk",
    tags=("billing",),
)
async def save_draft(call: Call) -> web.Response:
    body: SaveDraft = call.body
    price_book_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        book = await unit.get(price_book_id, PriceBook, checked=True)
        book.draft_checked(dict(body.prices), _overrides(body.tenant_overrides))
        return Decided(resource_id=book.id)

    return call.accepted(await call.execute(decide, tenant_id=None))
