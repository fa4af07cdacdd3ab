"""The platform's financial statement of one month: every tenant's lines, rendered one way.

The CSV is the tenants' FOCUS CSV over all of them (``BillingAccountId`` tells them apart);
the JSON adds each tenant's statement (status and hash), totals per currency, and a hash of
all the lines. Lines are in the statements' own order (start, resource, dimension, charge
id), so the same ledger always renders to the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import msgspec

from domain.billing.statement import CORRECTION, Line, content_hash, ordered, to_csv

_canonical = msgspec.json.Encoder(order="sorted")


class TenantStatement(msgspec.Struct, kw_only=True):
    tenant_id: str
    currency: str
    status: str
    billed_minor: int
    lines: int
    content_hash: str | None


def platform_csv(lines: Iterable[Line]) -> bytes:
    return to_csv(lines)


def platform_json(
    period: str, statements: Sequence[TenantStatement], lines: Sequence[Line]
) -> bytes:
    kept = ordered(lines)
    totals: dict[str, dict[str, int]] = {}
    for line in kept:
        total = totals.setdefault(
            line.currency, {"billed_minor": 0, "corrections_minor": 0, "lines": 0}
        )
        total["billed_minor"] += line.amount_minor
        total["lines"] += 1
        if line.charge_class == CORRECTION:
            total["corrections_minor"] += line.amount_minor
    document: dict[str, Any] = {
        "period": period,
        "content_hash": content_hash(kept),
        "tenants": sorted(statements, key=lambda s: (s.tenant_id, s.currency)),
        "totals": [{"currency": c, **totals[c]} for c in sorted(totals)],
        "lines": kept,
    }
    return _canonical.encode(document)
