"""What-if repricing, pure: lines rated from a published version, priced again against a draft."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import msgspec

from domain.billing.price_book import book_id
from domain.billing.rating import Charge, Usage, rate
from domain.billing.statement import PURCHASE, Line
from domain.billing.what_if import TenantDifference, reprice

T0 = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
REGION = "rgn-" + "1" * 26
OTHER_REGION = "rgn-" + "2" * 26
ACME, GLOBEX = "tnt-" + "a" * 26, "tnt-" + "b" * 26


def version(prices: dict[str, str], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "number": 1,
        "effective_from": (T0 - timedelta(days=1)).isoformat(),
        "prices": prices,
        "tenant_overrides": overrides or {},
    }


def book(region: str, published: dict[str, Any], draft: dict[str, Any] | None) -> dict[str, Any]:
    return {"id": book_id(region), "currency": "USD", "versions": [published], "draft": draft}


def draft(prices: dict[str, str], overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**version(prices, overrides), "number": 0, "effective_from": None}


def line(charge: Charge) -> Line:
    return Line(
        charge_id=charge.charge_id,
        tenant_id=charge.tenant_id,
        period="2027-03",
        charge_class="",
        resource_id=charge.resource_id,
        region_id=charge.region_id,
        project_id=charge.project_id,
        dimension=charge.dimension,
        quantity=charge.quantity,
        start=charge.start.isoformat(),
        end=charge.end.isoformat(),
        unit_price=charge.unit_price,
        discount_percent=charge.discount_percent,
        price_version=charge.price_version,
        amount_minor=charge.amount_minor,
        list_minor=charge.amount_minor,
        currency=charge.currency,
    )


def billed(books: dict[str, dict[str, Any]], *usages: Usage) -> list[Line]:
    return [line(c) for u in usages for c in rate(u, books)]


def usage(tenant: str, dimension: str, quantity: str, minutes: int, region: str = REGION) -> Usage:
    return Usage(
        resource_id=f"i-{tenant[-3:]}{dimension[:3]}",
        tenant_id=tenant,
        region_id=region,
        project_id=None,
        dimension=dimension,
        quantity=Decimal(quantity),
        start=T0 + timedelta(minutes=10),
        end=T0 + timedelta(minutes=10 + minutes),
    )


def test_the_published_prices_as_a_draft_reprice_to_exactly_what_was_billed() -> None:
    published = version({"vcpu": "12", "memory_gb": "4.5"}, {GLOBEX: {"discount_percent": "10"}})
    priced = book(REGION, published, draft(published["prices"], published["tenant_overrides"]))
    lines = billed(
        {priced["id"]: priced},
        usage(ACME, "vcpu", "2", 90),
        usage(ACME, "memory_gb", "1.5", 200),
        usage(GLOBEX, "vcpu", "3", 47),
    )
    assert len(lines) == 7  # cut at every hour
    found = reprice(lines, priced, priced["draft"])
    assert [(d.tenant_id, d.difference_minor) for d in found] == [(ACME, 0), (GLOBEX, 0)]
    assert [d.billed_minor for d in found] == [36 + 23, 25]  # 2x12x1.5h + 1.5x4.5x(10/3)h


def test_a_dearer_draft_a_discount_and_an_unpriced_dimension() -> None:
    published = version({"vcpu": "12", "memory_gb": "4"})
    new = draft({"vcpu": "24"}, {GLOBEX: {"discount_percent": "50", "prices": {}}})
    priced = book(REGION, published, new)
    lines = billed(
        {priced["id"]: priced},
        usage(ACME, "vcpu", "2", 60),  # 09:10-10:00 and 10:00-10:10: 20 + 4
        usage(ACME, "memory_gb", "2", 60),  # 8 in two lines, not priced by the draft
        usage(GLOBEX, "vcpu", "1", 30),  # 6; the draft's 24 at half price is 6 again
    )
    assert reprice(lines, priced, new) == [
        TenantDifference(
            tenant_id=ACME,
            currency="USD",
            lines=4,
            unpriced_lines=2,
            billed_minor=24 + 8,
            repriced_minor=48,
            difference_minor=48 - 32,
        ),
        TenantDifference(
            tenant_id=GLOBEX,
            currency="USD",
            lines=1,
            unpriced_lines=0,
            billed_minor=6,
            repriced_minor=6,
            difference_minor=0,
        ),
    ]


def test_lines_rated_from_another_book_and_purchases_are_left_out() -> None:
    mine = book(REGION, version({"vcpu": "12"}), draft({"vcpu": "0"}))
    theirs = book(OTHER_REGION, version({"vcpu": "12"}), None)
    lines = billed(
        {mine["id"]: mine, theirs["id"]: theirs},
        usage(ACME, "vcpu", "1", 60),
        usage(GLOBEX, "vcpu", "1", 60, region=OTHER_REGION),
    )
    bought = msgspec.structs.replace(lines[0], charge_id="chg-bought", category=PURCHASE)
    found = reprice([*lines, bought], mine, mine["draft"])
    assert [(d.tenant_id, d.billed_minor, d.repriced_minor) for d in found] == [(ACME, 12, 0)]
    assert reprice([], mine, mine["draft"]) == []
