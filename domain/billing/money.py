"""Money: integer minor units with a currency; prices may be fractions of a minor unit."""

from __future__ import annotations

import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from domain.errors import ValidationFailed

_CURRENCY = re.compile(r"^[A-Z]{3}$")
MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "BHD": 3, "KWD": 3, "OMR": 3}
"""ISO 4217 minor-unit exponents that are not 2."""
_ONE = Decimal(1)


def check_currency(currency: str) -> str:
    if not _CURRENCY.fullmatch(currency):
        raise ValidationFailed("a currency is an ISO 4217 code such as USD", field="currency")
    return currency


def digits(currency: str) -> int:
    return MINOR_DIGITS.get(currency, 2)


def minor_units(amount: Decimal) -> int:
    """Round an exact amount in minor units to a whole one, half to even (banker's)."""
    return int(amount.quantize(_ONE, rounding=ROUND_HALF_EVEN))


def price(value: str, field: str) -> Decimal:
    """A unit price in minor units per unit-hour: a non-negative decimal string."""
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        raise ValidationFailed(f"{field} is not a decimal number", field=field) from None
    if not parsed.is_finite() or parsed < 0 or parsed.as_tuple().exponent < -9:  # type: ignore[operator]
        raise ValidationFailed(
            f"{field} must be a non-negative decimal with at most 9 places", field=field
        )
    return parsed


def major(amount_minor: int, currency: str) -> str:
    """``1234`` USD is ``"12.34"``: how exports show an amount (FOCUS costs are in units)."""
    places = digits(currency)
    if places == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, part = divmod(abs(amount_minor), 10**places)
    return f"{sign}{whole}.{part:0{places}d}"
