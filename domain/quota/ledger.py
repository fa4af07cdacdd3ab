"""A tenant's quota ledger: its overrides and every allocation it holds.

Allocating appends to this one aggregate with the expected version, in the same append
as the resource's creation: two concurrent creates cannot both take the last unit,
because one of them fails the version check and decides again on fresh state.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import QuotaExceeded, ValidationFailed
from domain.ids import derived_id
from domain.quota.kinds import DEFAULT_LIMITS, QUOTA_KINDS


def ledger_id(tenant_id: str) -> str:
    return derived_id("qta", tenant_id)


class QuotaLedger(Aggregate):
    id_prefix = "qta"

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.overrides: dict[str, dict[str, int]] = {}
        """region → kind → limit, set by an admin for this tenant."""
        self.allocations: dict[str, dict[str, Any]] = {}
        """resource id → {"region": …, "amounts": {kind: amount}}."""

    @classmethod
    def open(cls, tenant_id: str) -> QuotaLedger:
        return cls._create(cls.Created, id=ledger_id(tenant_id), tenant_id=tenant_id)

    def view(self) -> dict[str, Any]:
        regions = {a["region"] for a in self.allocations.values()} | set(self.overrides)
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "overrides": self.overrides,
            "usage": {region: self.used(region) for region in sorted(regions)},
        }

    def used(self, region: str) -> dict[str, int]:
        totals = dict.fromkeys(QUOTA_KINDS, 0)
        for allocation in self.allocations.values():
            if allocation["region"] == region:
                for kind, amount in allocation["amounts"].items():
                    totals[kind] += amount
        return totals

    def limit(self, region: str, kind: str, region_defaults: Mapping[str, int]) -> int:
        override = self.overrides.get(region, {}).get(kind)
        if override is not None:
            return override
        return region_defaults.get(kind, DEFAULT_LIMITS[kind])

    def allocate(
        self,
        resource_id: str,
        region: str,
        amounts: Mapping[str, int],
        region_defaults: Mapping[str, int],
    ) -> None:
        """Take ``amounts`` for ``resource_id`` or raise ``QuotaExceeded`` taking nothing."""
        unknown = set(amounts) - set(QUOTA_KINDS)
        if unknown:
            raise ValidationFailed(f"unknown quota kinds: {sorted(unknown)}")
        if resource_id in self.allocations:
            return  # allocating twice for one resource is a no-op, not a double charge
        used = self.used(region)
        for kind, amount in amounts.items():
            limit = self.limit(region, kind, region_defaults)
            if used[kind] + amount > limit:
                raise QuotaExceeded(
                    f"{kind}: {used[kind]} used + {amount} requested exceeds the limit {limit}"
                    f" in region {region}",
                    kind=kind,
                    limit=limit,
                    used=used[kind],
                    requested=amount,
                )
        self._allocated(resource_id, region, dict(amounts))

    @event("Allocated")
    def _allocated(self, resource_id: str, region: str, amounts: dict[str, int]) -> None:
        self.allocations[resource_id] = {"region": region, "amounts": amounts}

    def release(self, resource_id: str) -> None:
        if resource_id in self.allocations:
            self._released(resource_id)

    @event("Released")
    def _released(self, resource_id: str) -> None:
        del self.allocations[resource_id]

    def set_limits(self, region: str, limits: Mapping[str, int | None]) -> None:
        for kind, value in limits.items():
            if kind not in QUOTA_KINDS:
                raise ValidationFailed(f"unknown quota kind {kind!r}")
            if value is not None and value < 0:
                raise ValidationFailed(f"{kind}: a limit cannot be negative")
        self._limits_set(region, dict(limits))

    @event("LimitsSet")
    def _limits_set(self, region: str, limits: dict[str, int | None]) -> None:
        current = self.overrides.setdefault(region, {})
        for kind, value in limits.items():
            if value is None:
                current.pop(kind, None)
            else:
                current[kind] = value
