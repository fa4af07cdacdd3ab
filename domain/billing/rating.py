"""Rating: usage intervals and price books in, charge lines out. Pure and deterministic.

An interval [start, end) of one dimension of one resource is cut at every hour boundary
(on-demand usage is settled hourly) and wherever another price version takes effect.
Each piece is one charge whose id is derived from what it is about, so rating the same
usage again, in a retry or a replay, yields the same ids and never a second charge.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from domain.billing.money import minor_units
from domain.billing.price_book import PLATFORM_BOOK_ID, Rate, book_id, rate_in
from domain.ids import hashed_id

HOUR = timedelta(hours=1)
_SECONDS_PER_HOUR = Decimal(3600)


class Usage(msgspec.Struct, frozen=True, kw_only=True):
    """One resource using ``quantity`` of one dimension over [start, end)."""

    resource_id: str
    tenant_id: str
    region_id: str
    project_id: str | None
    dimension: str
    quantity: Decimal
    start: datetime
    end: datetime


class Charge(msgspec.Struct, frozen=True, kw_only=True):
    charge_id: str
    resource_id: str
    tenant_id: str
    region_id: str
    project_id: str | None
    dimension: str
    quantity: str
    start: datetime
    end: datetime
    unit_price: str
    """List price in minor units per unit-hour."""
    discount_percent: str
    price_version: str
    amount_minor: int
    currency: str


def floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def charge_id(
    resource_id: str, dimension: str, start: datetime, end: datetime, version: str
) -> str:
    return hashed_id("chg", resource_id, dimension, start.isoformat(), end.isoformat(), version)


def _version_at(
    books: Mapping[str, dict[str, Any]], region_id: str, moment: datetime
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The book and version in force for ``region_id`` at ``moment``."""
    for key in (book_id(region_id), PLATFORM_BOOK_ID):
        book = books.get(key)
        if book is None:
            continue
        current = None
        for version in book["versions"]:
            if datetime.fromisoformat(version["effective_from"]) <= moment:
                current = version
        if current is not None:
            return book, current
    return None


def _cuts(
    books: Mapping[str, dict[str, Any]], region_id: str, start: datetime, end: datetime
) -> list[datetime]:
    moments = {start, end}
    hour = floor_hour(start) + HOUR
    while hour < end:
        moments.add(hour)
        hour += HOUR
    for key in (book_id(region_id), PLATFORM_BOOK_ID):
        for version in books.get(key, {}).get("versions", []):
            moment = datetime.fromisoformat(version["effective_from"])
            if start < moment < end:
                moments.add(moment)
    return sorted(moments)


def pieces(
    usage: Usage, books: Mapping[str, dict[str, Any]]
) -> Iterator[tuple[datetime, datetime, Rate | None, str]]:
    """[start, end) cut into pieces, each with the rate in force and the book's currency."""
    cuts = _cuts(books, usage.region_id, usage.start, usage.end)
    for start, end in itertools.pairwise(cuts):
        found = _version_at(books, usage.region_id, start)
        if found is None:
            yield start, end, None, ""
            continue
        book, version = found
        yield start, end, rate_in(book, version, usage.dimension, usage.tenant_id), book["currency"]


def amount(quantity: Decimal, seconds: Decimal, rate: Rate) -> int:
    return minor_units(quantity * seconds / _SECONDS_PER_HOUR * rate.effective_price)


def rate(usage: Usage, books: Mapping[str, dict[str, Any]]) -> list[Charge]:
    """The charges of one usage interval; unpriced pieces are free and make no line."""
    charges: list[Charge] = []
    for start, end, found, currency in pieces(usage, books):
        if found is None:
            continue
        seconds = Decimal((end - start).total_seconds())
        charges.append(
            Charge(
                charge_id=charge_id(usage.resource_id, usage.dimension, start, end, found.version),
                resource_id=usage.resource_id,
                tenant_id=usage.tenant_id,
                region_id=usage.region_id,
                project_id=usage.project_id,
                dimension=usage.dimension,
                quantity=str(usage.quantity),
                start=start,
                end=end,
                unit_price=str(found.unit_price),
                discount_percent=str(found.discount_percent),
                price_version=found.version,
                amount_minor=amount(usage.quantity, seconds, found),
                currency=currency,
            )
        )
    return charges
