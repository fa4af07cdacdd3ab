"""Prepaid subscriptions: a resource paid for a monthly or annual term, renewed or recovered.

A term runs from its start to the same time one (or twelve) calendar months later. Its
price is the on-demand price of the resource's size for 730 hours a month, less the
book's discount for the term. Renewal is ordered ahead of the end (automatic, or by the
tenant) and its money held until the new term starts. A term that ends unrenewed walks
through the recovery policy, by the clock: a grace period (the resource keeps running),
then stopped, then in the recycle bin, then purged. An upgrade within a term is charged
for the rest of the term, prorated to the second; a downgrade waits for the renewal.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.billing.dimensions import SUBSCRIPTION
from domain.billing.money import minor_units
from domain.billing.quotes import hourly_rate
from domain.errors import InvalidState, ValidationFailed

MONTHLY = "monthly"
ANNUAL = "annual"
TERMS = {MONTHLY: 1, ANNUAL: 12}
HOURS_PER_MONTH = Decimal(730)

ACTIVE = "active"
GRACE = "grace"
STOPPED = "stopped"
RECYCLED = "recycled"
PURGED = "purged"
CANCELLED = "cancelled"
RECOVERY_STAGES = (GRACE, STOPPED, RECYCLED, PURGED)
DEFAULT_RECOVERY = {"grace_days": 7, "stopped_days": 7, "recycled_days": 7}
"""Days spent in each stage after an unrenewed term ends, before the next one."""
RENEW_AHEAD = timedelta(days=3)


def add_months(moment: datetime, months: int) -> datetime:
    """The same day and time ``months`` later (clamped to the month's last day)."""
    month = moment.month - 1 + months
    year, month = moment.year + month // 12, month % 12 + 1
    day = moment.day
    while True:
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            day -= 1


def term_end(start: datetime, term: str) -> datetime:
    return add_months(start, TERMS[term])


def quote(
    books: Mapping[str, dict[str, Any]],
    tenant_id: str,
    region_id: str,
    size: Mapping[str, Any],
    term: str,
    at: datetime,
) -> tuple[int, str, str]:
    """A term's price for a resource of ``size``: (amount in minor units, currency, version)."""
    hourly = hourly_rate(books, tenant_id, region_id, size, at)
    discount = Decimal(hourly.term_discounts.get(term, "0"))
    total = hourly.total * HOURS_PER_MONTH * TERMS[term] * (100 - discount) / 100
    return minor_units(total), hourly.currency, hourly.price_version


def list_price(
    books: Mapping[str, dict[str, Any]],
    tenant_id: str,
    region_id: str,
    size: Mapping[str, Any],
    term: str,
    at: datetime,
) -> int:
    """A term's list price in minor units: ``quote``'s before any discount (the tenant's
    or the term's), what a statement's ``ListCost`` says the term would have cost."""
    hourly = hourly_rate(books, tenant_id, region_id, size, at)
    return minor_units(hourly.list_total * HOURS_PER_MONTH * TERMS[term])


def off_list(list_minor: int, amount_minor: int) -> str:
    """The percentage a price is below its list price, to a hundredth of a percent."""
    if list_minor <= 0:
        return "0"
    off = Decimal(100) * (list_minor - amount_minor) / list_minor
    return str(off.quantize(Decimal("0.01")).normalize())


def prorated(difference_minor: int, start: datetime, end: datetime, now: datetime) -> int:
    """What is left of a term's price difference from ``now`` to ``end``, to the second."""
    remaining = Decimal(max((end - now).total_seconds(), 0))
    whole = Decimal((end - start).total_seconds())
    return minor_units(Decimal(difference_minor) * remaining / whole)


def purchase_line(
    charge_id: str,
    resource_id: str,
    region_id: str,
    project_id: str | None,
    term: str,
    start: datetime,
    end: datetime,
    amount_minor: int,
    currency: str,
    price_version: str,
    list_minor: int,
) -> dict[str, Any]:
    """A prepaid purchase as a statement line: the term it pays for, at its price, with the
    list price it was discounted from (its ``unit_price``: one term, in minor units)."""
    return {
        "charge_id": charge_id,
        "resource_id": resource_id,
        "region_id": region_id,
        "project_id": project_id,
        "dimension": f"{SUBSCRIPTION}:{term}",
        "quantity": "1",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "unit_price": str(list_minor),
        "discount_percent": off_list(list_minor, amount_minor),
        "price_version": price_version,
        "amount_minor": amount_minor,
        "list_minor": list_minor,
        "currency": currency,
    }


class Subscription(Aggregate):
    id_prefix = "sub"

    def __init__(
        self,
        tenant_id: str,
        resource_id: str,
        region_id: str,
        project_id: str | None,
        term: str,
        auto_renew: bool,
        size: dict[str, Any],
        starts_at: datetime,
        amount_minor: int,
        recovery: dict[str, int],
    ) -> None:
        if term not in TERMS:
            raise ValidationFailed("a term is monthly or annual", field="term")
        self.tenant_id = tenant_id
        self.resource_id = resource_id
        self.region_id = region_id
        self.project_id = project_id
        self.term = term
        self.auto_renew = auto_renew
        self.size = size
        """What the current term was paid for."""
        self.renewal_size = size
        """What the next term will be quoted for (a downgrade waits here)."""
        self.starts_at = starts_at
        self.ends_at = term_end(starts_at, term)
        self.amount_minor = amount_minor
        self.recovery = recovery
        self.status = ACTIVE
        self.stage_since: datetime | None = None
        self.renewal_order: str | None = None
        """The renewal order holding money for the next term, if one was placed."""
        self.terms = 1

    @classmethod
    def open(cls, subscription_id: str, **fields: Any) -> Subscription:
        """A subscription under a given id (one per resource, derived from its id)."""
        return cls._create(cls.Created, id=subscription_id, **fields)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "project_id": self.project_id,
            "resource_id": self.resource_id,
            "region_id": self.region_id,
            "term": self.term,
            "auto_renew": self.auto_renew,
            "size": self.size,
            "renewal_size": self.renewal_size,
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat(),
            "amount_minor": self.amount_minor,
            "recovery": self.recovery,
            "status": self.status,
            "stage_since": self.stage_since.isoformat() if self.stage_since else None,
            "renewal_order": self.renewal_order,
            "terms": self.terms,
        }

    @property
    def covers(self) -> bool:
        """Whether the resource is paid for in advance (no on-demand metering)."""
        return self.status not in (CANCELLED, PURGED)

    # -- renewal -----------------------------------------------------------------------

    @event("AutoRenewSet")
    def set_auto_renew(self, auto_renew: bool) -> None:
        self.auto_renew = auto_renew

    def renewal_due(self, now: datetime) -> bool:
        return (
            self.status in (ACTIVE, GRACE)
            and self.renewal_order is None
            and now >= self.ends_at - RENEW_AHEAD
        )

    @event("RenewalOrdered")
    def renewal_ordered(self, order_id: str, amount_minor: int) -> None:
        self.renewal_order = order_id

    @event("RenewalFailed")
    def renewal_failed(self, reason: str, at: datetime) -> None:
        pass

    def renew(self, start: datetime) -> None:
        """The held renewal starts its term at ``start`` (the old end, or now if lapsed)."""
        if self.renewal_order is None:
            raise InvalidState("no renewal was ordered", subscription_id=self.id)
        self._renewed(start, term_end(start, self.term))

    @event("Renewed")
    def _renewed(self, starts_at: datetime, ends_at: datetime) -> None:
        self.starts_at = starts_at
        self.ends_at = ends_at
        self.size = self.renewal_size
        self.renewal_order = None
        self.status = ACTIVE
        self.stage_since = None
        self.terms += 1

    # -- size --------------------------------------------------------------------------

    def resize(self, size: dict[str, Any], upgrade_minor: int) -> None:
        """Bigger: ``upgrade_minor`` (prorated) is paid now. Smaller: from the renewal."""
        if self.status != ACTIVE:
            raise InvalidState(f"the subscription is {self.status}", subscription_id=self.id)
        if upgrade_minor > 0:
            self._upgraded(size, upgrade_minor)
        else:
            self._downgrade_scheduled(size)

    @event("Upgraded")
    def _upgraded(self, size: dict[str, Any], amount_minor: int) -> None:
        self.size = size
        self.renewal_size = size

    @event("DowngradeScheduled")
    def _downgrade_scheduled(self, size: dict[str, Any]) -> None:
        self.renewal_size = size

    # -- recovery ----------------------------------------------------------------------

    def next_stage(self, now: datetime) -> str | None:
        """The recovery stage the clock has reached, past the current one (from grace on:
        an active term's end is the renewal's to judge)."""
        if self.status not in RECOVERY_STAGES[:-1] or self.stage_since is None:
            return None
        waited = {GRACE: "grace_days", STOPPED: "stopped_days", RECYCLED: "recycled_days"}
        if now >= self.stage_since + timedelta(days=self.recovery[waited[self.status]]):
            return RECOVERY_STAGES[RECOVERY_STAGES.index(self.status) + 1]
        return None

    def enter(self, stage: str, at: datetime) -> None:
        if stage not in RECOVERY_STAGES:
            raise ValidationFailed(f"{stage} is not a recovery stage")
        # Each stage starts when the previous one was due, not when a worker noticed.
        self._entered(stage, at)

    @event("StageEntered")
    def _entered(self, stage: str, at: datetime) -> None:
        self.status = stage
        self.stage_since = at

    @event("Cancelled")
    def cancel(self, reason: str) -> None:
        self.status = CANCELLED
