"""Rating: usage intervals and price books in, charge lines out. Pure and deterministic.

An interval [start, end) of one dimension of one resource is cut at every hour boundary
(on-demand usage is settled hourly) and wherever another price version takes effect.
Each piece is one charge whose id is derived from what it is about, so rating the same
usage again, in a retry or a replay, yields the same ids and never a second charge.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from domain.billing.money import minor_units
from domain.billing.price_book import PLATFORM_BOOK_ID, Rate, book_id, rate_for

HOUR = timedelta(hours=1)
_SECONDS_PER_HOUR = Decimal(3600)

# Rating runs over every interval of every resource with the same few books: the books'
# effective times and the regions' book ids are worked out once, not once per interval.
_moment = functools.lru_cache(maxsize=4096)(datetime.fromisoformat)


@functools.lru_cache(maxsize=4096)
def _books_of(region_id: str) -> tuple[str, str]:
    return book_id(region_id), PLATFORM_BOOK_ID


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
    flavor_id: str | None = None
    """The instance's flavor over the interval (a book may price it instead)."""


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
    """``hashed_id("chg", resource, dimension, start, end, version)``, made faster."""
    return _hashed_charge_id(
        f"{resource_id}\x1f{dimension}\x1f{start.isoformat()}\x1f{end.isoformat()}\x1f{version}"
    )


_CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
"""``domain.ids``' alphabet (Crockford's base32)."""
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
"""Every two Crockford characters, by the 10 bits they stand for."""


def _hashed_charge_id(joined: str) -> str:
    """``domain.ids.hashed_id`` for a charge: the same 26 characters of the digest's first
    128 bits (as 130, the top two zero), ten bits at a time instead of through base64's
    pure-Python base32 encoder (about a third of rating's time). Checked against
    ``hashed_id`` in tests/unit/test_billing_rating_speed.py."""
    v = int.from_bytes(hashlib.sha256(joined.encode()).digest()[:16], "big")
    p = _PAIRS
    return (
        f"chg-{p[v >> 120]}{p[v >> 110 & 1023]}{p[v >> 100 & 1023]}{p[v >> 90 & 1023]}"
        f"{p[v >> 80 & 1023]}{p[v >> 70 & 1023]}{p[v >> 60 & 1023]}{p[v >> 50 & 1023]}"
        f"{p[v >> 40 & 1023]}{p[v >> 30 & 1023]}{p[v >> 20 & 1023]}{p[v >> 10 & 1023]}"
        f"{p[v & 1023]}"
    )


def _version_at(
    books: Mapping[str, dict[str, Any]], region_id: str, moment: datetime
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The book and version in force for ``region_id`` at ``moment``."""
    for key in _books_of(region_id):
        book = books.get(key)
        if book is None:
            continue
        current = None
        for version in book["versions"]:
            if _moment(version["effective_from"]) <= moment:
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
    for key in _books_of(region_id):
        for version in books.get(key, {}).get("versions", []):
            moment = _moment(version["effective_from"])
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
        found_rate = rate_for(book, version, usage.dimension, usage.tenant_id, usage.flavor_id)
        yield start, end, found_rate, book["currency"]


def amount(quantity: Decimal, seconds: Decimal, rate: Rate) -> int:
    return minor_units(quantity * seconds / _SECONDS_PER_HOUR * rate.effective_price)


def rate(usage: Usage, books: Mapping[str, dict[str, Any]]) -> list[Charge]:
    """The charges of one usage interval; unpriced pieces are free and make no line."""
    charges: list[Charge] = []
    region_id, dimension, tenant_id = usage.region_id, usage.dimension, usage.tenant_id
    head = f"{usage.resource_id}\x1f{dimension}\x1f"
    quantity = str(usage.quantity)
    rates: dict[int, tuple[Rate | None, str]] = {}
    cuts = _cuts(books, region_id, usage.start, usage.end)
    start_text = cuts[0].isoformat()
    for start, end in itertools.pairwise(cuts):
        end_text = end.isoformat()
        found = _version_at(books, region_id, start)
        if found is not None:
            # Pieces of one interval mostly share a version: look its rate up once.
            book, version = found
            known = rates.get(id(version))
            if known is None:
                known = rates[id(version)] = (
                    rate_for(book, version, dimension, tenant_id, usage.flavor_id),
                    book["currency"],
                )
            priced, currency = known
            if priced is not None:
                seconds = Decimal((end - start).total_seconds())
                charges.append(
                    Charge(
                        charge_id=_hashed_charge_id(
                            f"{head}{start_text}\x1f{end_text}\x1f{priced.version}"
                        ),
                        resource_id=usage.resource_id,
                        tenant_id=tenant_id,
                        region_id=region_id,
                        project_id=usage.project_id,
                        dimension=dimension,
                        quantity=quantity,
                        start=start,
                        end=end,
                        unit_price=str(priced.unit_price),
                        discount_percent=str(priced.discount_percent),
                        price_version=priced.version,
                        amount_minor=amount(usage.quantity, seconds, priced),
                        currency=currency,
                    )
                )
        start_text = end_text
    return charges
