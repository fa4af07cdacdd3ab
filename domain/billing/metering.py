"""Metering: how billed quantities over time become intervals, and what is left to rate.

A resource's billed quantities change at events; where one dimension's quantity changes,
its open interval ends and another starts. Settlement rates each interval from where it
was last rated up to a cutoff (a whole hour), so rating is the same whatever its rhythm.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import msgspec

from domain.billing.dimensions import FLAVOR
from domain.billing.rating import Usage

_FLAVOR = f"{FLAVOR}:"


class Segment(msgspec.Struct, frozen=True, kw_only=True):
    """One interval of one dimension of one resource, as metered."""

    resource_id: str
    tenant_id: str
    region_id: str
    project_id: str | None
    dimension: str
    quantity: Decimal
    start: datetime
    end: datetime | None
    """None while it is still running."""
    rated_until: datetime | None = None
    flavor_id: str | None = None


def changes(
    before: dict[str, Decimal], after: dict[str, Decimal]
) -> tuple[list[str], dict[str, Decimal]]:
    """The dimensions whose interval ends, and those that start (with their quantities).

    A running instance that changes flavor ends and starts every interval, so that each
    one lies within one flavor (which a book may price instead of vCPUs and memory).
    """
    flavors = (
        {d for d in before if d.startswith(_FLAVOR)},
        {d for d in after if d.startswith(_FLAVOR)},
    )
    if all(flavors) and flavors[0] != flavors[1]:
        return list(before), dict(after)
    closed = [d for d in before if before[d] != after.get(d)]
    opened = {d: q for d, q in after.items() if before.get(d) != q}
    return closed, opened


def to_rate(segment: Segment, cutoff: datetime) -> Usage | None:
    """What of ``segment`` is still to be rated up to ``cutoff``; None when nothing is."""
    start = max(segment.start, segment.rated_until or segment.start)
    end = min(segment.end or cutoff, cutoff)
    if start >= end:
        return None
    return Usage(
        resource_id=segment.resource_id,
        tenant_id=segment.tenant_id,
        region_id=segment.region_id,
        project_id=segment.project_id,
        dimension=segment.dimension,
        quantity=segment.quantity,
        start=start,
        end=end,
        flavor_id=segment.flavor_id,
    )
