"""Double entry: every financial event of an account as postings that sum to zero.

Debits are positive, credits negative. The tenant's account is what the platform owes
the tenant (credit-normal): a recharge credits it, a charge debits it, so a tenant in
arrears has a debit balance there, a receivable. Revenue is booked per product family
and region; recharges arrive through cash; hand-made credits come out of adjustments.
A hold only reserves money (no posting); when its order is fulfilled it is spent like a
charge, on the ``subscription`` product.
"""

from __future__ import annotations

from typing import Any

import msgspec

from domain.billing.dimensions import family

CASH = "cash"
ADJUSTMENTS = "adjustments"


class Posting(msgspec.Struct, frozen=True, kw_only=True):
    ledger_account: str
    amount_minor: int
    charge_id: str | None = None


def tenant_account(tenant_id: str) -> str:
    return f"tenant:{tenant_id}"


def revenue_account(dimension: str, region_id: str) -> str:
    return f"revenue:{family(dimension)}:{region_id}"


def postings(name: str, tenant_id: str, state: dict[str, Any]) -> list[Posting]:
    """The postings of one ``BillingAccount`` event (none for events that move no money)."""
    tenant = tenant_account(tenant_id)
    if name == "ChargesPosted":
        lines: list[Posting] = []
        for charge in state["charges"]:
            cost, cid = int(charge["amount_minor"]), charge["charge_id"]
            lines.append(Posting(ledger_account=tenant, amount_minor=cost, charge_id=cid))
            lines.append(
                Posting(
                    ledger_account=revenue_account(charge["dimension"], charge["region_id"]),
                    amount_minor=-cost,
                    charge_id=cid,
                )
            )
        return lines
    if name == "HoldPosted":
        line = state["line"]
        cost = int(line["amount_minor"])
        return [
            Posting(ledger_account=tenant, amount_minor=cost, charge_id=line["charge_id"]),
            Posting(
                ledger_account=revenue_account(line["dimension"], line["region_id"]),
                amount_minor=-cost,
                charge_id=line["charge_id"],
            ),
        ]
    if name == "Recharged":
        money = int(state["amount_minor"])
        return [
            Posting(ledger_account=CASH, amount_minor=money),
            Posting(ledger_account=tenant, amount_minor=-money),
        ]
    if name == "Adjusted":
        money = int(state["amount_minor"])
        return [
            Posting(ledger_account=ADJUSTMENTS, amount_minor=money),
            Posting(ledger_account=tenant, amount_minor=-money),
        ]
    return []
