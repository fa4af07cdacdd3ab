"""Rating made faster rates exactly as before: the same charges, the same ids.

The reference is rating as first written: every piece from ``pieces`` priced through
``amount``, its id from ``domain.ids.hashed_id``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from domain.billing.price_book import PLATFORM_BOOK_ID, book_id
from domain.billing.rating import Charge, Usage, amount, charge_id, pieces, rate
from domain.ids import hashed_id

T0 = datetime(2027, 3, 1, tzinfo=UTC)
REGION, BOOKLESS = "rgn-" + "1" * 26, "rgn-" + "2" * 26
ACME, GLOBEX = "tnt-" + "a" * 26, "tnt-" + "b" * 26


def reference(usage: Usage, books: dict[str, dict[str, Any]]) -> list[Charge]:
    charges = []
    for start, end, found, currency in pieces(usage, books):
        if found is None:
            continue
        seconds = Decimal((end - start).total_seconds())
        charges.append(
            Charge(
                charge_id=hashed_id(
                    "chg",
                    usage.resource_id,
                    usage.dimension,
                    start.isoformat(),
                    end.isoformat(),
                    found.version,
                ),
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


def version(number: int, at: datetime, prices: dict[str, str], **overrides: Any) -> dict[str, Any]:
    return {
        "number": number,
        "effective_from": at.isoformat(),
        "prices": prices,
        "tenant_overrides": overrides,
    }


BOOKS = {
    book_id(REGION): {
        "id": book_id(REGION),
        "currency": "USD",
        "versions": [
            version(
                1,
                T0 - timedelta(days=30),
                {"vcpu": "12", "memory_gb": "4.25", "disk_gb:standard": "0.5"},
                **{GLOBEX: {"discount_percent": "12.5", "prices": {"vcpu": "9"}}},
            ),
            version(2, T0 + timedelta(days=3, minutes=17), {"vcpu": "13", "memory_gb": "4"}),
        ],
        "draft": None,
    },
    PLATFORM_BOOK_ID: {
        "id": PLATFORM_BOOK_ID,
        "currency": "EUR",
        "versions": [version(1, T0 + timedelta(days=1), {"vcpu": "10"})],
        "draft": None,
    },
}


def usages(count: int, seed: int) -> list[Usage]:
    rnd = random.Random(seed)
    made = []
    for n in range(count):
        start = T0 + timedelta(
            seconds=rnd.randrange(0, 6 * 86400), microseconds=rnd.choice([0, rnd.randrange(10**6)])
        )
        made.append(
            Usage(
                resource_id=f"i-{n:026d}",
                tenant_id=rnd.choice((ACME, GLOBEX)),
                region_id=rnd.choice((REGION, BOOKLESS)),
                project_id=rnd.choice((None, "prj-" + "3" * 26)),
                dimension=rnd.choice(("vcpu", "memory_gb", "disk_gb:standard", "gpu")),
                quantity=Decimal(rnd.choice(("1", "2", "0.5", "0.333", "16"))),
                start=start,
                end=start + timedelta(seconds=rnd.randrange(0, 30 * 3600)),
            )
        )
    return made


def test_rate_gives_the_reference_charges() -> None:
    compared = 0
    for usage in usages(4000, seed=5):
        assert rate(usage, BOOKS) == reference(usage, BOOKS), usage
        compared += len(reference(usage, BOOKS))
    assert compared > 10_000


def test_charge_ids_are_domain_ids_hashed_ids() -> None:
    rnd = random.Random(9)
    for n in range(20_000):
        resource = f"i-{rnd.getrandbits(64):x}{'é' * (n % 3)}"
        start = T0 + timedelta(seconds=rnd.randrange(10**7), microseconds=rnd.randrange(10**6))
        end = start + timedelta(minutes=rnd.randrange(1, 61))
        parts = (resource, "vcpu", start.isoformat(), end.isoformat(), f"pbk@v{n}")
        assert charge_id(resource, "vcpu", start, end, f"pbk@v{n}") == hashed_id("chg", *parts)
