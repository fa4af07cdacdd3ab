"""Quotes: what a resource of a given size costs an hour on demand, and a term in advance."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from domain.billing.dimensions import instance_usage
from domain.billing.price_book import PLATFORM_BOOK_ID, book_id, rate_for, version_label
from domain.errors import ValidationFailed


class HourlyRate(msgspec.Struct, frozen=True, kw_only=True):
    currency: str
    price_version: str
    per_dimension: dict[str, str]
    """Minor units an hour for each priced dimension (after the tenant's discount)."""
    total: Decimal
    list_total: Decimal
    """Minor units an hour at list prices, before the tenant's discount."""
    term_discounts: dict[str, str]


def _version(book: Mapping[str, Any], moment: datetime) -> dict[str, Any] | None:
    current = None
    for version in book["versions"]:
        if datetime.fromisoformat(version["effective_from"]) <= moment:
            current = version
    return current


def hourly_rate(
    books: Mapping[str, dict[str, Any]],
    tenant_id: str,
    region_id: str,
    size: Mapping[str, Any],
    at: datetime,
) -> HourlyRate:
    """A running instance of ``size`` in ``region_id``, priced as of ``at`` for the tenant."""
    for key in (book_id(region_id), PLATFORM_BOOK_ID):
        book = books.get(key)
        version = _version(book, at) if book is not None else None
        if book is None or version is None:
            continue
        flavor_id = size.get("flavor_id")
        usage = instance_usage(
            "running", size["vcpus"], size["memory_mb"], size["disk_gb"], 0, flavor_id
        )
        per_dimension: dict[str, str] = {}
        total = listed = Decimal(0)
        for dimension, quantity in sorted(usage.items()):
            rate = rate_for(book, version, dimension, tenant_id, flavor_id)
            if rate is not None:
                cost = quantity * rate.effective_price
                per_dimension[dimension] = str(cost)
                total += cost
                listed += quantity * rate.unit_price
        return HourlyRate(
            currency=book["currency"],
            price_version=version_label(key, version["number"]),
            per_dimension=per_dimension,
            total=total,
            list_total=listed,
            term_discounts=dict(version.get("term_discounts", {})),
        )
    raise ValidationFailed("no price book prices this region", region_id=region_id)
