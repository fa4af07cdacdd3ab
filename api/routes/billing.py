"""Billing accounts: a tenant's balance and standing, and the admin's limits and credits."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.listing import Accepted
from api.routing import Router
from api.services import billing
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body, Reason
from domain import clock
from domain.billing.account import BillingAccount, account_id
from domain.errors import NotFound
from domain.identity.tenant import Tenant

router = Router()

Minor = Annotated[int, msgspec.Meta(ge=-(10**13), le=10**13)]


class AccountView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    currency: str
    balance_minor: int
    credit_limit_minor: int
    low_balance_minor: int
    standing: str
    """``ok``, ``low`` (at or below the warning threshold) or ``arrears`` (past the credit line)."""
    arrears_since: str | None
    opened_period: str
    closed_periods: list[str]


class Limits(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    credit_limit_minor: Annotated[int, msgspec.Meta(ge=0, le=10**13)]
    """How far below zero the balance may go before the tenant is in arrears."""
    low_balance_minor: Minor
    """A balance at or below this warns the tenant (``BalanceLow``)."""


class Adjustment(Body, kw_only=True, forbid_unknown_fields=True):
    amount_minor: Minor
    """Positive credits the tenant, negative debits it."""
    reason: Reason


async def _account(call: Call, tenant_id: str, action: str) -> web.Response:
    try:
        return await call.one(await call.document(account_id(tenant_id), "bac", action))
    except NotFound:
        # A tenant created before accounts opened with their tenants has none until its first
        # recharge or charge opens it: until then it reads as it will open, empty.
        tenant = await call.document(tenant_id, "tnt", action)
        return json_response(BillingAccount.open(tenant_id, tenant.view["currency"]).view())


@router.route(
    "GET",
    "/v1/billing/account",
    summary="The caller's billing account: balance, credit line, standing",
    action="billing:account:read",
    response=AccountView,
    tags=("billing",),
)
async def my_account(call: Call) -> web.Response:
    if call.me.tenant_id is None:
        raise NotFound("platform staff have no billing account; see /v1/admin/tenants/{id}")
    return await _account(call, call.me.tenant_id, "billing:account:read")


@router.route(
    "GET",
    "/v1/admin/tenants/{id}/billing-account",
    summary="A tenant's billing account",
    action="admin:billing:read",
    response=AccountView,
    kind="tnt",
    tags=("billing",),
)
async def tenant_account(call: Call) -> web.Response:
    return await _account(call, call.request.match_info["id"], "admin:billing:read")


@router.route(
    "POST",
    "/v1/admin/tenants/{id}/actions/set-billing-limits",
    summary="Set a tenant's credit line and low-balance warning",
    action="admin:billing:update",
    body=Limits,
    response=Accepted,
    status=202,
    kind="tnt",
    tags=("billing",),
)
async def set_limits(call: Call) -> web.Response:
    body: Limits = call.body
    tenant_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        await unit.get(tenant_id, Tenant, checked=True)
        account = await billing.account_of(unit, tenant_id)
        account.set_limits(body.credit_limit_minor, body.low_balance_minor)
        await billing.enforce_standing(unit, account, clock.now())
        return Decided(resource_id=tenant_id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/admin/tenants/{id}/actions/adjust-balance",
    summary="Credit or debit a tenant's balance by hand, with a reason",
    action="admin:billing:update",
    body=Adjustment,
    response=Accepted,
    status=202,
    kind="tnt",
    tags=("billing",),
)
async def adjust_balance(call: Call) -> web.Response:
    body: Adjustment = call.body
    tenant_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        await unit.get(tenant_id, Tenant, checked=True)
        account = await billing.account_of(unit, tenant_id)
        account.adjust(body.amount_minor, body.reason)
        await billing.enforce_standing(unit, account, clock.now())
        return Decided(resource_id=tenant_id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))
