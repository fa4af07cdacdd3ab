"""Statements: a tenant's charge lines of one month, rendered the same way every time.

The content hash covers the canonical JSON of the lines, so a statement frozen on close
can be checked later by anyone holding its export. CSV columns follow the FinOps FOCUS
specification (costs in currency units, periods as ISO 8601 UTC); our own columns carry
the ``x_`` prefix the specification reserves for them.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from domain.billing.dimensions import SERVICES, UNITS, family
from domain.billing.money import digits, major

CORRECTION = "Correction"
USAGE = "Usage"
PURCHASE = "Purchase"
"""FOCUS ChargeCategory values: metered usage, and prepaid terms bought."""
_canonical = msgspec.json.Encoder(order="sorted")

FOCUS_COLUMNS = (
    "BillingAccountId",
    "SubAccountId",
    "BillingPeriodStart",
    "BillingPeriodEnd",
    "ChargePeriodStart",
    "ChargePeriodEnd",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "BilledCost",
    "EffectiveCost",
    "ListCost",
    "ContractedCost",
    "ListUnitPrice",
    "ContractedUnitPrice",
    "BillingCurrency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingQuantity",
    "PricingUnit",
    "ResourceId",
    "RegionId",
    "ServiceName",
    "ServiceCategory",
    "x_ChargeId",
    "x_Dimension",
    "x_PriceVersion",
    "x_DiscountPercent",
    "x_AmountMinor",
)


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One charge as it stands on a statement."""

    charge_id: str
    tenant_id: str
    period: str
    charge_class: str
    """``""`` for a regular line, ``Correction`` for a late charge of a closed period."""
    resource_id: str
    region_id: str
    project_id: str | None
    dimension: str
    quantity: str
    start: str
    end: str
    unit_price: str
    discount_percent: str
    price_version: str
    amount_minor: int
    list_minor: int
    currency: str
    category: str = USAGE


def ordered(lines: Iterable[Line]) -> list[Line]:
    return sorted(
        lines, key=lambda line: (line.start, line.resource_id, line.dimension, line.charge_id)
    )


def content_hash(lines: Sequence[Line]) -> str:
    return hashlib.sha256(_canonical.encode(ordered(lines))).hexdigest()


def period_bounds(period: str) -> tuple[str, str]:
    year, month = int(period[:4]), int(period[5:])
    following = f"{year + month // 12:04d}-{month % 12 + 1:02d}"
    return f"{period}-01T00:00:00+00:00", f"{following}-01T00:00:00+00:00"


def hours(line: Line) -> str:
    """Quantity times duration: what the line consumed, in its dimension's unit-hours."""
    seconds = (
        datetime.fromisoformat(line.end) - datetime.fromisoformat(line.start)
    ).total_seconds()
    return str((Decimal(line.quantity) * Decimal(seconds) / 3600).normalize())


@functools.lru_cache(maxsize=64)
def _bounds(period: str) -> tuple[str, str]:
    return period_bounds(period)


@functools.lru_cache(maxsize=256)
def _product(dimension: str) -> tuple[str, str, str]:
    """ServiceName, ServiceCategory and unit of a dimension."""
    name = family(dimension)
    service, category = SERVICES.get(name, ("Other", "Other"))
    return service, category, UNITS.get(name, "hours")


def unit_prices(line: Line) -> tuple[str, str]:
    """``ListUnitPrice`` and ``ContractedUnitPrice`` in currency units, the contracted one
    after the line's discount, so that each times ``PricingQuantity`` is ``ListCost`` and
    ``EffectiveCost`` (within the rounding of those to a minor unit)."""
    if line.category == PURCHASE:
        # A term's price was rounded once, to a minor unit: its costs are its unit prices.
        quantity = Decimal(line.quantity)
        scale = Decimal(10) ** digits(line.currency)
        listed, contracted = line.list_minor / quantity, line.amount_minor / quantity
        return _plain(listed / scale), _plain(contracted / scale)
    return _usage_prices(line.unit_price, line.discount_percent, line.currency)


@functools.lru_cache(maxsize=1024)
def _usage_prices(unit_price: str, discount_percent: str, currency: str) -> tuple[str, str]:
    """A rate's prices (minor units per unit-hour) in currency units: a statement's many
    lines share a few rates, so each is worked out once."""
    scale = Decimal(10) ** digits(currency)
    listed = Decimal(unit_price)
    contracted = listed * (100 - Decimal(discount_percent)) / 100
    return _plain(listed / scale), _plain(contracted / scale)


def _plain(value: Decimal) -> str:
    """A decimal without an exponent or trailing zeros: ``0.0875``, ``204.4``, ``0``."""
    return f"{value.normalize():f}"


def _row(line: Line) -> tuple[str, ...]:
    """One line's values in ``FOCUS_COLUMNS`` order."""
    start, end = _bounds(line.period)
    service, category, unit = _product(line.dimension)
    quantity = line.quantity if line.category == PURCHASE else hours(line)
    cost = major(line.amount_minor, line.currency)
    list_unit, contracted_unit = unit_prices(line)
    return (
        line.tenant_id,
        line.project_id or "",
        start,
        end,
        line.start,
        line.end,
        line.category,
        line.charge_class,
        f"{line.dimension} of {line.resource_id}",
        cost,
        cost,
        major(line.list_minor, line.currency),
        cost,
        list_unit,
        contracted_unit,
        line.currency,
        quantity,
        unit,
        quantity,
        unit,
        line.resource_id,
        line.region_id,
        service,
        category,
        line.charge_id,
        line.dimension,
        line.price_version,
        line.discount_percent,
        str(line.amount_minor),
    )


def to_csv(lines: Iterable[Line]) -> bytes:
    """RFC 4180: CRLF line ends, fields quoted where they need it, a header row."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(FOCUS_COLUMNS)
    writer.writerows(map(_row, ordered(lines)))
    return out.getvalue().encode()


def to_json(
    tenant_id: str,
    period: str,
    status: str,
    currency: str,
    lines: Sequence[Line],
    hash_: str | None,
) -> bytes:
    """The statement with its totals and hash (the hash only once the period is closed)."""
    kept = ordered(lines)
    document: dict[str, Any] = {
        "tenant_id": tenant_id,
        "period": period,
        "status": status,
        "currency": currency,
        "content_hash": hash_,
        "totals": {
            "billed_minor": sum(line.amount_minor for line in kept),
            "corrections_minor": sum(
                line.amount_minor for line in kept if line.charge_class == CORRECTION
            ),
            "lines": len(kept),
        },
        "lines": kept,
    }
    return _canonical.encode(document)
