"""Price quotes for creates (``?validate_only=true``): what an order would cost, no order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from api.services import references
from api.services.subscriptions import price_books
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.billing.quotes import hourly_rate
from domain.billing.subscription import TERMS, quote


async def instances_quote(
    unit: UnitOfWork,
    tenant_id: str,
    region_id: str,
    flavor_id: str,
    image_id: str,
    disk_gb: int | None,
    count: int,
) -> dict[str, Any]:
    """On demand per hour, and each prepaid term, for ``count`` instances of a flavor."""
    await references.region(unit, region_id)
    flavor = await references.flavor(unit, flavor_id)
    image = await references.image(unit, tenant_id, image_id, region_id)
    disk = disk_gb or max(flavor.min_disk_gb, image.min_disk_gb)
    size = {
        "vcpus": flavor.vcpus,
        "memory_mb": flavor.memory_mb,
        "disk_gb": disk,
        "flavor_id": flavor_id,
    }
    books = await price_books(unit, region_id)
    now = clock.now()
    hourly = hourly_rate(books, tenant_id, region_id, size, now)
    return {
        "currency": hourly.currency,
        "price_version": hourly.price_version,
        "count": count,
        "on_demand_per_hour": {d: str(Decimal(v) * count) for d, v in hourly.per_dimension.items()},
        "on_demand_per_hour_total": str(hourly.total * count),
        "terms_minor": {
            term: quote(books, tenant_id, region_id, size, term, now)[0] * count for term in TERMS
        },
        "quoted_at": now.isoformat(),
    }
