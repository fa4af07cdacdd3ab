"""Billing decisions: a tenant's account, recharges, posting rated usage, closing months.

Arrears follow the global configuration: with ``freeze_on_arrears`` a tenant whose
balance stays below its credit line for ``arrears_grace_days`` is frozen, and a recharge
that lifts it out of arrears unfreezes it again, in the same append.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.billing.account import ARREARS, BillingAccount, account_id, period_of
from domain.billing.rating import Charge
from domain.identity.tenant import Tenant
from domain.settings.global_config import DEFAULTS, GLOBAL_CONFIG_ID, GlobalConfig

ARREARS_REASON = "arrears"
"""The freeze reason billing gives, so that only its own freezes are lifted by a recharge."""


async def account_of(
    unit: UnitOfWork, tenant_id: str, first_use: datetime | None = None
) -> BillingAccount:
    """The tenant's account, opened in this command if it has none yet."""
    found = await unit.find(account_id(tenant_id), BillingAccount)
    if found is not None:
        return found
    tenant = await unit.get(tenant_id, Tenant)
    account = BillingAccount.open(tenant_id, tenant.currency, first_use)
    unit.add(account)
    return account


async def _arrears_policy(unit: UnitOfWork) -> tuple[bool, timedelta]:
    config = await unit.find(GLOBAL_CONFIG_ID, GlobalConfig)
    if config is None:
        return bool(DEFAULTS["freeze_on_arrears"]), timedelta(days=DEFAULTS["arrears_grace_days"])
    return config.freeze_on_arrears, timedelta(days=config.arrears_grace_days)


async def enforce_standing(unit: UnitOfWork, account: BillingAccount, now: datetime) -> None:
    """Freeze a tenant long enough in arrears; unfreeze one that left them."""
    tenant = await unit.get(account.tenant_id, Tenant)
    if account.standing == ARREARS:
        freeze, grace = await _arrears_policy(unit)
        since = account.arrears_since
        if freeze and not tenant.frozen and since is not None and now >= since + grace:
            tenant.freeze(ARREARS_REASON)
    elif tenant.frozen and tenant.freeze_reason == ARREARS_REASON:
        tenant.unfreeze()


async def recharge(
    unit: UnitOfWork, tenant_id: str, amount_minor: int, currency: str, reference: str
) -> Decided:
    await unit.get(tenant_id, Tenant, checked=True)
    account = await account_of(unit, tenant_id)
    account.recharge(amount_minor, currency, reference)
    await enforce_standing(unit, account, clock.now())
    return Decided(resource_id=tenant_id, body={"balance_minor": account.balance_minor})


async def post_charges(
    unit: UnitOfWork, tenant_id: str, charges: list[Charge], rated_through: datetime
) -> Decided:
    """Post what was rated up to ``rated_through`` (skipping anything posted before), then
    close the months that ended by then: their usage is all in."""
    first = min((c.start for c in charges), default=None)
    account = await account_of(unit, tenant_id, first)
    posted = account.post(charges)
    for period in account.open_periods_before(period_of(rated_through)):
        account.close_period(period)
    await enforce_standing(unit, account, clock.now())
    return Decided(
        resource_id=account.id,
        body={"posted": len(posted), "amount_minor": sum(c.amount_minor for c in posted)},
    )
