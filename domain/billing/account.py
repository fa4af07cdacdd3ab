"""A tenant's billing account: its balance, what has been rated, and its standing.

Charges are posted in batches. For every resource and dimension the account remembers
how far usage has been rated; a charge that starts before that mark was posted already
(a retried or replayed settlement) and is skipped, so nothing is ever charged twice, by
construction rather than by care. Crossing the low-balance threshold and going below the
credit line are events of their own; what follows arrears (freezing) is the policy's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.billing.rating import Charge
from domain.errors import DomainError, InvalidState, ValidationFailed
from domain.ids import derived_id

OK = "ok"
LOW = "low"
ARREARS = "arrears"


class InsufficientBalance(DomainError):
    code = "insufficient_balance"
    status = 402


def account_id(tenant_id: str) -> str:
    return derived_id("bac", tenant_id)


def period_of(moment: datetime) -> str:
    """The statement period a moment belongs to: its UTC month, ``2026-11``."""
    return f"{moment.year:04d}-{moment.month:02d}"


def next_period(period: str) -> str:
    year, month = int(period[:4]), int(period[5:])
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


class BillingAccount(Aggregate):
    id_prefix = "bac"

    def __init__(self, tenant_id: str, currency: str, opened_period: str) -> None:
        self.tenant_id = tenant_id
        self.currency = currency
        self.opened_period = opened_period
        """The first statement period: nothing before it is ever closed."""
        self.balance_minor = 0
        self.credit_limit_minor = 0
        """How far below zero the balance may go before the tenant is in arrears."""
        self.low_balance_minor = 0
        """At or below this (and above the credit line) the tenant is warned."""
        self.standing = OK
        self.arrears_since: datetime | None = None
        self.rated_until: dict[str, str] = {}
        """``resource|dimension`` → the end of the last interval charged."""
        self.closed_periods: list[str] = []
        self.holds: dict[str, int] = {}
        """Order id → money reserved for it (a prepaid order not yet fulfilled)."""

    @classmethod
    def open(
        cls, tenant_id: str, currency: str, first_use: datetime | None = None
    ) -> BillingAccount:
        """Opened by its first charge or recharge; its first period is that of the
        earliest usage it is opened for (rated after the fact), or the current one."""
        now = clock.now()
        return cls._create(
            cls.Created,
            id=account_id(tenant_id),
            tenant_id=tenant_id,
            currency=currency,
            opened_period=period_of(min(now, first_use or now)),
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "currency": self.currency,
            "balance_minor": self.balance_minor,
            "credit_limit_minor": self.credit_limit_minor,
            "low_balance_minor": self.low_balance_minor,
            "standing": self.standing,
            "arrears_since": self.arrears_since.isoformat() if self.arrears_since else None,
            "opened_period": self.opened_period,
            "closed_periods": self.closed_periods,
            "held_minor": sum(self.holds.values()),
            "available_minor": self.available_minor,
        }

    @property
    def available_minor(self) -> int:
        """What a new order may take: the balance and credit line, less what is held."""
        return self.balance_minor + self.credit_limit_minor - sum(self.holds.values())

    # -- charges ---------------------------------------------------------------------

    def unrated(self, charges: list[Charge]) -> list[Charge]:
        """The charges not posted yet, in interval order per resource and dimension."""
        marks = dict(self.rated_until)
        fresh: list[Charge] = []
        for charge in sorted(charges, key=lambda c: (c.resource_id, c.dimension, c.start)):
            key = f"{charge.resource_id}|{charge.dimension}"
            mark = marks.get(key)
            if charge.currency != self.currency:
                continue
            if mark is not None and charge.start < datetime.fromisoformat(mark):
                continue
            marks[key] = charge.end.isoformat()
            fresh.append(charge)
        return fresh

    def post(self, charges: list[Charge]) -> list[Charge]:
        """Post what was not posted yet; returns the charges that were."""
        fresh = self.unrated(charges)
        if not fresh:
            return []
        self._posted([msgspec_dict(c) for c in fresh])
        self._judge()
        return fresh

    @event("ChargesPosted")
    def _posted(self, charges: list[dict[str, Any]]) -> None:
        for charge in charges:
            self.balance_minor -= int(charge["amount_minor"])
            self.rated_until[f"{charge['resource_id']}|{charge['dimension']}"] = str(charge["end"])

    # -- money in --------------------------------------------------------------------

    def recharge(self, amount_minor: int, currency: str, reference: str) -> None:
        if amount_minor <= 0:
            raise ValidationFailed("a recharge must be a positive amount", field="amount_minor")
        if currency != self.currency:
            raise ValidationFailed(
                f"this tenant is billed in {self.currency}, not {currency}", field="currency"
            )
        self._recharged(amount_minor, currency, reference)
        self._judge()

    @event("Recharged")
    def _recharged(self, amount_minor: int, currency: str, reference: str) -> None:
        self.balance_minor += amount_minor

    def adjust(self, amount_minor: int, reason: str) -> None:
        """A credit (positive) or debit (negative) an operator grants or corrects by hand."""
        if amount_minor == 0:
            raise ValidationFailed("an adjustment needs an amount", field="amount_minor")
        self._adjusted(amount_minor, self.currency, reason)
        self._judge()

    @event("Adjusted")
    def _adjusted(self, amount_minor: int, currency: str, reason: str) -> None:
        self.balance_minor += amount_minor

    def set_limits(self, credit_limit_minor: int, low_balance_minor: int) -> None:
        if credit_limit_minor < 0:
            raise ValidationFailed("a credit line is zero or more", field="credit_limit_minor")
        self._limits_set(credit_limit_minor, low_balance_minor)
        self._judge()

    @event("LimitsSet")
    def _limits_set(self, credit_limit_minor: int, low_balance_minor: int) -> None:
        self.credit_limit_minor = credit_limit_minor
        self.low_balance_minor = low_balance_minor

    # -- prepaid orders --------------------------------------------------------------

    def hold(self, order_id: str, amount_minor: int, order: dict[str, Any] | None = None) -> None:
        """Reserve an order's price; refused when the balance and credit line fall short.

        ``order`` says what it is for (kind, subscription, resource, term): the orders list.
        """
        if order_id in self.holds:
            raise InvalidState("that order holds money already", order_id=order_id)
        if amount_minor < 0:
            raise ValidationFailed("a hold is zero or more", field="amount_minor")
        if 0 < amount_minor and amount_minor > self.available_minor:
            raise InsufficientBalance(
                f"the order costs {amount_minor} and {self.available_minor} is available",
                order_id=order_id,
                available_minor=self.available_minor,
            )
        self._held(order_id, amount_minor, {**(order or {}), "currency": self.currency})

    @event("HoldPlaced")
    def _held(self, order_id: str, amount_minor: int, order: dict[str, Any]) -> None:
        self.holds[order_id] = amount_minor

    def post_hold(self, order_id: str, line: dict[str, Any]) -> None:
        """The order is fulfilled: its held money is spent (``line`` is its statement line)."""
        amount = self._hold_of(order_id)
        if int(line["amount_minor"]) != amount:
            raise InvalidState("the line's amount differs from the hold", order_id=order_id)
        self._hold_posted(order_id, line)
        self._judge()

    @event("HoldPosted")
    def _hold_posted(self, order_id: str, line: dict[str, Any]) -> None:
        self.balance_minor -= self.holds.pop(order_id)

    def void_hold(self, order_id: str, reason: str) -> None:
        self._hold_of(order_id)
        self._hold_voided(order_id, reason)

    @event("HoldVoided")
    def _hold_voided(self, order_id: str, reason: str) -> None:
        self.holds.pop(order_id)

    def _hold_of(self, order_id: str) -> int:
        if order_id not in self.holds:
            raise InvalidState("that order holds no money", order_id=order_id)
        return self.holds[order_id]

    # -- standing --------------------------------------------------------------------

    def _judge(self) -> None:
        """Say so when the balance crosses a threshold (each crossing once)."""
        if self.balance_minor < -self.credit_limit_minor:
            standing = ARREARS
        elif self.balance_minor <= self.low_balance_minor:
            standing = LOW
        else:
            standing = OK
        if standing == self.standing:
            return
        if standing == ARREARS:
            self._went_into_arrears(self.balance_minor, clock.now())
        elif self.standing == ARREARS:
            self._left_arrears(self.balance_minor, standing)
        elif standing == LOW:
            self._balance_low(self.balance_minor)
        else:
            self._balance_restored(self.balance_minor)

    @event("WentIntoArrears")
    def _went_into_arrears(self, balance_minor: int, at: datetime) -> None:
        self.standing = ARREARS
        self.arrears_since = at

    @event("LeftArrears")
    def _left_arrears(self, balance_minor: int, standing: str) -> None:
        self.standing = standing
        self.arrears_since = None

    @event("BalanceLow")
    def _balance_low(self, balance_minor: int) -> None:
        self.standing = LOW

    @event("BalanceRestored")
    def _balance_restored(self, balance_minor: int) -> None:
        self.standing = OK

    # -- statements ------------------------------------------------------------------

    def open_periods_before(self, period: str) -> list[str]:
        """Periods from the first one up to (not including) ``period`` still open, in order."""
        current = (
            next_period(self.closed_periods[-1]) if self.closed_periods else self.opened_period
        )
        found: list[str] = []
        while current < period:
            found.append(current)
            current = next_period(current)
        return found

    def close_period(self, period: str) -> None:
        """Freeze a month's statement; later charges for it become corrections."""
        if self.closed_periods and period <= self.closed_periods[-1]:
            raise InvalidState(f"{period} is closed already", account_id=self.id)
        if period < self.opened_period:
            raise InvalidState(f"the account opened after {period}", account_id=self.id)
        self._period_closed(period)

    @event("PeriodClosed")
    def _period_closed(self, period: str) -> None:
        self.closed_periods.append(period)


def msgspec_dict(charge: Charge) -> dict[str, Any]:
    return {
        "charge_id": charge.charge_id,
        "resource_id": charge.resource_id,
        "region_id": charge.region_id,
        "project_id": charge.project_id,
        "dimension": charge.dimension,
        "quantity": charge.quantity,
        "start": charge.start.isoformat(),
        "end": charge.end.isoformat(),
        "unit_price": charge.unit_price,
        "discount_percent": charge.discount_percent,
        "price_version": charge.price_version,
        "amount_minor": charge.amount_minor,
        "currency": charge.currency,
    }
