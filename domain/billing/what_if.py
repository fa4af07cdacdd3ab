"""What-if repricing: a period's charge lines priced again against a book's draft version.

Each line that was rated from the book (its price version names the book) is priced again,
over the same interval and quantity, at the draft's price for that tenant, rounded per line
as rating rounds. Lines rated from other books are left out: the draft cannot move them.
A dimension the draft does not price costs nothing in it, as it would when rated.
Purchases (prepaid terms) are left out too: what they cost was agreed when they were bought.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

import msgspec

from domain.billing.price_book import rate_in
from domain.billing.rating import amount
from domain.billing.statement import USAGE, Line


class TenantDifference(msgspec.Struct, kw_only=True):
    tenant_id: str
    currency: str
    lines: int
    unpriced_lines: int
    """Lines whose dimension the draft does not price (repriced at zero)."""
    billed_minor: int
    repriced_minor: int
    difference_minor: int
    """Repriced minus billed: positive when the draft would have billed more."""


def repriced_minor(line: Line, book: dict[str, Any], draft: dict[str, Any]) -> int | None:
    """The line's amount under ``draft``; None when the draft does not price its dimension."""
    rate = rate_in(book, draft, line.dimension, line.tenant_id)
    if rate is None:
        return None
    seconds = Decimal(
        (datetime.fromisoformat(line.end) - datetime.fromisoformat(line.start)).total_seconds()
    )
    return amount(Decimal(line.quantity), seconds, rate)


def reprice(
    lines: Iterable[Line], book: dict[str, Any], draft: dict[str, Any]
) -> list[TenantDifference]:
    """Per tenant (in id order), what was billed from ``book`` and what ``draft`` would bill."""
    prefix = f"{book['id']}@"
    sums: dict[tuple[str, str], list[int]] = {}
    for line in lines:
        if line.category != USAGE or not line.price_version.startswith(prefix):
            continue
        entry = sums.setdefault((line.tenant_id, line.currency), [0, 0, 0, 0])
        again = repriced_minor(line, book, draft)
        entry[0] += 1
        entry[1] += again is None
        entry[2] += line.amount_minor
        entry[3] += again or 0
    return [
        TenantDifference(
            tenant_id=tenant_id,
            currency=currency,
            lines=count,
            unpriced_lines=unpriced,
            billed_minor=billed,
            repriced_minor=again,
            difference_minor=again - billed,
        )
        for (tenant_id, currency), (count, unpriced, billed, again) in sorted(sums.items())
    ]
