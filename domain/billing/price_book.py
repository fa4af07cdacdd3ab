"""Price books: per region (or platform-wide) unit prices, versioned and effective-dated.

A published version is never edited: a change is a new version with a later effective
time, and a version can only take effect from now on, so nothing already rated moves.
A draft is a version that was never published: what-if repricing runs closed periods
against it. Tenants may have their own prices and a discount in any version.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.billing.dimensions import FLAVOR, FLAVOR_PRICED, check_dimension
from domain.billing.money import check_currency, price
from domain.errors import InvalidState, ValidationFailed
from domain.ids import derived_id

PLATFORM_BOOK_ID = "pbk-" + "0" * 26
"""The platform-wide book: regions without a book of their own are priced from it."""
DRAFT = "draft"


def book_id(region_id: str | None) -> str:
    """Each region has at most one book, found without a lookup."""
    return PLATFORM_BOOK_ID if region_id is None else derived_id("pbk", region_id)


def checked_prices(prices: dict[str, str]) -> dict[str, str]:
    return {check_dimension(d): str(price(v, f"prices.{d}")) for d, v in sorted(prices.items())}


def checked_overrides(overrides: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    checked: dict[str, dict[str, Any]] = {}
    for tenant_id, override in sorted(overrides.items()):
        discount = price(str(override.get("discount_percent", "0")), "discount_percent")
        if discount > 100:
            raise ValidationFailed("a discount is at most 100 percent", field="discount_percent")
        checked[tenant_id] = {
            "discount_percent": str(discount),
            "prices": checked_prices(dict(override.get("prices") or {})),
        }
    return checked


def checked_discounts(discounts: dict[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for term, value in sorted(discounts.items()):
        if term not in ("monthly", "annual"):
            raise ValidationFailed("term discounts are for monthly or annual", field=term)
        discount = price(value, f"term_discounts.{term}")
        if discount > 100:
            raise ValidationFailed("a discount is at most 100 percent", field=term)
        checked[term] = str(discount)
    return checked


class Rate:
    """One dimension's price for one tenant in one version: what a charge line records."""

    __slots__ = ("discount_percent", "unit_price", "version")

    def __init__(self, unit_price: Decimal, discount_percent: Decimal, version: str) -> None:
        self.unit_price = unit_price
        self.discount_percent = discount_percent
        self.version = version

    @property
    def effective_price(self) -> Decimal:
        return self.unit_price * (100 - self.discount_percent) / 100


class PriceBook(Aggregate):
    id_prefix = "pbk"

    def __init__(self, name: str, currency: str, region_id: str | None) -> None:
        self.name = name
        self.currency = currency
        self.region_id = region_id
        self.versions: list[dict[str, Any]] = []
        """Published versions in effective order: number, effective_from, prices, overrides."""
        self.draft: dict[str, Any] | None = None

    @classmethod
    def open(cls, name: str, currency: str, region_id: str | None) -> PriceBook:
        return cls._create(
            cls.Created,
            id=book_id(region_id),
            name=name,
            currency=check_currency(currency),
            region_id=region_id,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "name": self.name,
            "currency": self.currency,
            "region_id": self.region_id,
            "versions": self.versions,
            "draft": self.draft,
        }

    def publish(
        self,
        prices: dict[str, str],
        effective_from: datetime | None = None,
        tenant_overrides: dict[str, dict[str, Any]] | None = None,
        term_discounts: dict[str, str] | None = None,
    ) -> None:
        """A new version, in force from ``effective_from`` (now when not given).

        ``term_discounts`` take a percentage off prepaid terms (``monthly``, ``annual``).
        """
        now = clock.now()
        moment = effective_from or now
        if moment.tzinfo is None:
            raise ValidationFailed("effective_from needs a time zone", field="effective_from")
        if moment < now:
            raise ValidationFailed(
                "a version takes effect from now on; the past is already priced",
                field="effective_from",
            )
        if self.versions and moment <= datetime.fromisoformat(self.versions[-1]["effective_from"]):
            raise InvalidState(
                "a new version must take effect after the latest one", price_book_id=self.id
            )
        self._published(
            len(self.versions) + 1,
            moment.isoformat(),
            checked_prices(prices),
            checked_overrides(tenant_overrides or {}),
            checked_discounts(term_discounts or {}),
        )

    @event("VersionPublished")
    def _published(
        self,
        number: int,
        effective_from: str,
        prices: dict[str, str],
        tenant_overrides: dict[str, dict[str, Any]],
        term_discounts: dict[str, str],
    ) -> None:
        self.versions.append(
            {
                "number": number,
                "effective_from": effective_from,
                "prices": prices,
                "tenant_overrides": tenant_overrides,
                "term_discounts": term_discounts,
            }
        )

    @event("DraftSaved")
    def save_draft(
        self, prices: dict[str, str], tenant_overrides: dict[str, dict[str, Any]]
    ) -> None:
        self.draft = {
            "number": 0,
            "effective_from": None,
            "prices": prices,
            "tenant_overrides": tenant_overrides,
        }

    def draft_checked(
        self, prices: dict[str, str], tenant_overrides: dict[str, dict[str, Any]] | None
    ) -> None:
        self.save_draft(checked_prices(prices), checked_overrides(tenant_overrides or {}))


def version_label(book: str, number: int) -> str:
    return f"{book}@{DRAFT}" if number == 0 else f"{book}@v{number}"


def rate_in(
    book_view: dict[str, Any], version: dict[str, Any], dimension: str, tenant_id: str
) -> Rate | None:
    """The price of ``dimension`` for ``tenant_id`` in one version, or None if unpriced."""
    override = version["tenant_overrides"].get(tenant_id, {})
    unit = override.get("prices", {}).get(dimension, version["prices"].get(dimension))
    if unit is None:
        return None
    return Rate(
        Decimal(unit),
        Decimal(override.get("discount_percent", "0")),
        version_label(book_view["id"], version["number"]),
    )


def rate_for(
    book_view: dict[str, Any],
    version: dict[str, Any],
    dimension: str,
    tenant_id: str,
    flavor_id: str | None,
) -> Rate | None:
    """Like ``rate_in``, but a flavor priced in this version makes its instances' vCPUs and
    memory free (its own ``flavor:<id>`` line carries them)."""
    if dimension in FLAVOR_PRICED and flavor_id is not None:
        if rate_in(book_view, version, f"{FLAVOR}:{flavor_id}", tenant_id) is not None:
            return None
    return rate_in(book_view, version, dimension, tenant_id)
