"""FOCUS unit prices in currency units: ListUnitPrice x PricingQuantity = ListCost and
ContractedUnitPrice x PricingQuantity = EffectiveCost, within the rounding to a minor unit,
on every kind of line, in currencies of 0, 2 and 3 minor digits."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.billing.account import msgspec_dict
from domain.billing.money import digits, minor_units
from domain.billing.price_book import book_id
from domain.billing.rating import Usage, rate
from domain.billing.statement import CORRECTION, PURCHASE, USAGE, Line, to_csv
from domain.billing.subscription import list_price, purchase_line, quote

T0 = datetime(2027, 3, 1, 9, 20, tzinfo=UTC)
REGION = "rgn-" + "0" * 26
TENANT = "tnt-" + "1" * 26
SIZE = {"vcpus": 2, "memory_mb": 3072, "disk_gb": 20, "flavor_id": None}


def books(currency: str) -> dict[str, dict[str, object]]:
    version = {
        "number": 1,
        "effective_from": (T0 - timedelta(days=1)).isoformat(),
        "prices": {"vcpu": "12.5", "memory_gb": "3.3", "disk_gb:standard": "0.47"},
        "tenant_overrides": {TENANT: {"discount_percent": "12.5", "prices": {}}},
        "term_discounts": {"monthly": "5", "annual": "17.5"},
    }
    key = book_id(REGION)
    return {key: {"id": key, "currency": currency, "versions": [version]}}


def as_line(charge: dict[str, object], category: str, charge_class: str = "") -> Line:
    """A charge as the ledger puts it on a statement (``projections.billing.ledger``)."""
    start = datetime.fromisoformat(str(charge["start"]))
    end = datetime.fromisoformat(str(charge["end"]))
    hours = Decimal((end - start).total_seconds()) / 3600
    if category == PURCHASE:
        listed = int(str(charge.get("list_minor", charge["amount_minor"])))
    else:
        listed = minor_units(
            Decimal(str(charge["quantity"])) * hours * Decimal(str(charge["unit_price"]))
        )
    return Line(
        charge_id=str(charge["charge_id"]),
        tenant_id=TENANT,
        period="2027-03",
        charge_class=charge_class,
        resource_id=str(charge["resource_id"]),
        region_id=REGION,
        project_id=None,
        dimension=str(charge["dimension"]),
        quantity=str(charge["quantity"]),
        start=start.isoformat(),
        end=end.isoformat(),
        unit_price=str(charge["unit_price"]),
        discount_percent=str(charge["discount_percent"]),
        price_version=str(charge["price_version"]),
        amount_minor=int(str(charge["amount_minor"])),
        list_minor=listed,
        currency=str(charge["currency"]),
        category=category,
    )


def every_kind(currency: str) -> list[Line]:
    priced = books(currency)
    lines: list[Line] = []
    for dimension, quantity in (("vcpu", "2"), ("memory_gb", "3"), ("disk_gb:standard", "20")):
        usage = Usage(
            resource_id="i-od",
            tenant_id=TENANT,
            region_id=REGION,
            project_id=None,
            dimension=dimension,
            quantity=Decimal(quantity),
            start=T0,
            end=T0 + timedelta(hours=2, minutes=7, seconds=13),
        )
        charges = rate(usage, priced)
        lines += [as_line(msgspec_dict(c), USAGE) for c in charges[:-1]]
        lines.append(as_line(msgspec_dict(charges[-1]), USAGE, CORRECTION))
    for term, months in (("monthly", 1), ("annual", 12)):
        amount, _, version = quote(priced, TENANT, REGION, SIZE, term, T0)
        listed = list_price(priced, TENANT, REGION, SIZE, term, T0)
        end = T0 + timedelta(days=30 * months)
        line = purchase_line(
            f"chg-{term}", "i-pre", REGION, None, term, T0, end, amount, currency, version, listed
        )
        lines.append(as_line(line, PURCHASE))
    # An upgrade: a prorated difference, and a purchase posted before lines had list prices.
    upgrade = purchase_line(
        "chg-up", "i-pre", REGION, None, "monthly", T0, T0, 1_037, currency, "v", 1_191
    )
    lines.append(as_line(upgrade, PURCHASE))
    old = {**upgrade, "charge_id": "chg-old", "unit_price": "1037", "discount_percent": "0"}
    del old["list_minor"]
    lines.append(as_line(old, PURCHASE))
    return lines


def rows(lines: list[Line]) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(to_csv(lines).decode(), newline="")))


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
def test_unit_prices_times_quantity_are_the_costs_on_every_kind_of_line(currency: str) -> None:
    found = rows(every_kind(currency))
    half_minor = Decimal(1) / 2 / 10 ** digits(currency)
    kinds = set()
    for row in found:
        quantity = Decimal(row["PricingQuantity"])
        listed, contracted = Decimal(row["ListUnitPrice"]), Decimal(row["ContractedUnitPrice"])
        assert abs(listed * quantity - Decimal(row["ListCost"])) <= half_minor, row
        assert abs(contracted * quantity - Decimal(row["EffectiveCost"])) <= half_minor, row
        assert row["ContractedCost"] == row["EffectiveCost"] == row["BilledCost"]
        assert "E" not in row["ListUnitPrice"] + row["ContractedUnitPrice"]
        kinds.add((row["ChargeCategory"], row["ChargeClass"], row["x_Dimension"]))
        if row["x_DiscountPercent"] != "0":
            assert contracted < listed, row
    assert kinds >= {
        ("Usage", "", "vcpu"),
        ("Usage", "Correction", "vcpu"),
        ("Purchase", "", "subscription:monthly"),
        ("Purchase", "", "subscription:annual"),
    }


def test_the_numbers_of_one_line_of_each_kind() -> None:
    found = rows(every_kind("USD"))
    by_charge = {row["x_ChargeId"]: row for row in found}
    # The last vCPU piece: 27 min 13 s of 2 vCPUs at 12.5 cents an hour (11.34), less 12.5%.
    vcpu = next(r for r in found if (r["x_Dimension"], r["ChargeClass"]) == ("vcpu", CORRECTION))
    assert (vcpu["ListUnitPrice"], vcpu["ContractedUnitPrice"]) == ("0.125", "0.109375")
    assert (vcpu["ListCost"], vcpu["EffectiveCost"]) == ("0.11", "0.10")
    # A month of 2 vCPUs, 3 GB and 20 GB at list: (25 + 9.9 + 9.4) x 730 = 32,339 cents;
    # less 12.5% for the tenant and 5% for the term: 26,881.79, billed 26,882.
    monthly = by_charge["chg-monthly"]
    assert (monthly["ListUnitPrice"], monthly["ListCost"]) == ("323.39", "323.39")
    assert (monthly["ContractedUnitPrice"], monthly["EffectiveCost"]) == ("268.82", "268.82")
    assert (monthly["PricingQuantity"], monthly["x_DiscountPercent"]) == ("1", "16.87")
    old = by_charge["chg-old"]  # posted at its price, with no list price of its own
    assert (old["ListUnitPrice"], old["ContractedUnitPrice"], old["ListCost"]) == (
        "10.37",
        "10.37",
        "10.37",
    )
