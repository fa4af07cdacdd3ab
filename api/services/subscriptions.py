"""Prepaid subscriptions: subscribe an instance, renew, resize within a term, recover.

Money moves through the tenant's account as holds: an order reserves its price, and the
hold is posted (spent) when the term it pays for starts, or voided if it never does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.services import billing, compute, references
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.billing.account import BillingAccount
from domain.billing.price_book import PLATFORM_BOOK_ID, PriceBook, book_id
from domain.billing.subscription import (
    DEFAULT_RECOVERY,
    GRACE,
    PURGED,
    RECYCLED,
    STOPPED,
    Subscription,
    list_price,
    prorated,
    purchase_line,
    quote,
    term_end,
)
from domain.compute.instance import DELETING, ERROR, Instance
from domain.compute.instance import PURGED as INSTANCE_PURGED
from domain.compute.instance import RECYCLED as RECYCLED_INSTANCE
from domain.errors import Conflict, InvalidState, NotFound
from domain.ids import derived_id, hashed_id, new_id

_UNSUBSCRIBABLE = frozenset({DELETING, RECYCLED_INSTANCE, INSTANCE_PURGED, ERROR})
"""An instance on its way out (or failed) cannot be paid for in advance."""


def subscription_id(instance_id: str) -> str:
    return derived_id("sub", instance_id)


async def price_books(unit: UnitOfWork, region_id: str) -> dict[str, dict[str, Any]]:
    books: dict[str, dict[str, Any]] = {}
    for key in (book_id(region_id), PLATFORM_BOOK_ID):
        book = await unit.find(key, PriceBook)
        if book is not None:
            books[key] = book.view()
    return books


def _size(instance: Instance) -> dict[str, Any]:
    """What a term is priced on: the size, and the flavor (a book may price it instead)."""
    return {
        "vcpus": instance.vcpus,
        "memory_mb": instance.memory_mb,
        "disk_gb": instance.disk_gb,
        "flavor_id": instance.flavor_id,
    }


def _about(subscription: Subscription, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "subscription_id": subscription.id,
        "resource_id": subscription.resource_id,
        "term": subscription.term,
    }


def _spend(
    account: BillingAccount,
    subscription: Subscription,
    amount: int,
    currency: str,
    version: str,
    start: datetime,
    end: datetime,
    list_minor: int,
    order_id: str | None = None,
    kind: str = "new",
) -> str:
    """Hold (unless held already) and post one order's money for [start, end);
    ``list_minor`` is what it would have cost at list prices."""
    order = order_id or new_id("ord")
    if order_id is None:
        account.hold(order, amount, _about(subscription, kind))
    line = purchase_line(
        hashed_id("chg", order),
        subscription.resource_id,
        subscription.region_id,
        subscription.project_id,
        subscription.term,
        start,
        end,
        amount,
        currency,
        version,
        list_minor,
    )
    account.post_hold(order, line)
    return order


async def subscribe(
    unit: UnitOfWork,
    tenant_id: str,
    instance_id: str,
    term: str,
    auto_renew: bool,
    recovery: dict[str, int] | None = None,
    projects: tuple[str, ...] | None = None,
) -> Decided:
    """Pay a term in advance; from now the instance is not metered on demand."""
    scope = references.Scope(tenant_id=tenant_id, projects=projects)
    instance = await references.instance(unit, scope, instance_id)
    if instance.status in _UNSUBSCRIBABLE:
        raise InvalidState(f"the instance is {instance.status}", instance_id=instance_id)
    if await unit.find(subscription_id(instance_id), Subscription) is not None:
        raise Conflict("the instance has a subscription already", instance_id=instance_id)
    now = clock.now()
    books = await price_books(unit, instance.region_id)
    amount, currency, version = quote(
        books, tenant_id, instance.region_id, _size(instance), term, now
    )
    listed = list_price(books, tenant_id, instance.region_id, _size(instance), term, now)
    account = await billing.account_of(unit, tenant_id)
    if currency != account.currency:
        raise InvalidState(
            f"the region is priced in {currency}, the tenant pays {account.currency}"
        )
    subscription = Subscription.open(
        subscription_id(instance_id),
        tenant_id=tenant_id,
        resource_id=instance_id,
        region_id=instance.region_id,
        project_id=instance.project_id,
        term=term,
        auto_renew=auto_renew,
        size=_size(instance),
        starts_at=now,
        amount_minor=amount,
        recovery={**DEFAULT_RECOVERY, **(recovery or {})},
    )
    unit.add(subscription)
    order = _spend(
        account, subscription, amount, currency, version, now, subscription.ends_at, listed
    )
    await billing.enforce_standing(unit, account, now)
    return Decided(
        resource_id=subscription.id,
        body={
            "order_id": order,
            "amount_minor": amount,
            "ends_at": subscription.ends_at.isoformat(),
        },
    )


async def not_prepaid(unit: UnitOfWork, instance_id: str) -> None:
    """A prepaid instance is resized through its subscription, which charges the upgrade."""
    found = await unit.find(subscription_id(instance_id), Subscription)
    if found is not None and found.covers:
        raise InvalidState(
            f"the instance is prepaid: resize it with POST /v1/billing/subscriptions/"
            f"{found.id}/actions/resize",
            subscription_id=found.id,
        )


async def subscription_of(unit: UnitOfWork, sub_id: str, tenant_id: str | None) -> Subscription:
    found = await unit.get(sub_id, Subscription, checked=True)
    if tenant_id is not None and found.tenant_id != tenant_id:
        raise NotFound(f"{sub_id} does not exist", resource_id=sub_id)
    return found


async def order_renewal(unit: UnitOfWork, subscription: Subscription) -> str:
    """Hold the next term's price (at the prices in force now, for the renewal size)."""
    now = clock.now()
    amount, _, _ = quote(
        await price_books(unit, subscription.region_id),
        subscription.tenant_id,
        subscription.region_id,
        subscription.renewal_size,
        subscription.term,
        now,
    )
    account = await billing.account_of(unit, subscription.tenant_id)
    order = new_id("ord")
    account.hold(order, amount, _about(subscription, "renewal"))
    subscription.renewal_ordered(order, amount)
    return order


async def renew(unit: UnitOfWork, subscription: Subscription) -> Decided:
    """The tenant renews: ahead of the end the money is held; once lapsed, a term starts now."""
    if subscription.status == PURGED or not subscription.covers:
        raise InvalidState(f"the subscription is {subscription.status}")
    if subscription.renewal_order is None:
        await order_renewal(unit, subscription)
    if subscription.status in (GRACE, STOPPED, RECYCLED):
        await start_renewed_term(unit, subscription, clock.now())  # lapsed: from now
    return Decided(resource_id=subscription.id, body={"order_id": subscription.renewal_order})


async def start_renewed_term(unit: UnitOfWork, subscription: Subscription, at: datetime) -> None:
    """Spend the held renewal; the new term runs from ``at`` (the old end, or now if lapsed)."""
    order = subscription.renewal_order
    assert order is not None
    account = await billing.account_of(unit, subscription.tenant_id)
    books = await price_books(unit, subscription.region_id)
    priced = (subscription.tenant_id, subscription.region_id, subscription.renewal_size)
    _, currency, version = quote(books, *priced, subscription.term, at)
    listed = list_price(books, *priced, subscription.term, at)
    if subscription.status == RECYCLED:
        instance = await unit.get(subscription.resource_id, Instance)
        instance.restore()
    end = term_end(at, subscription.term)
    _spend(account, subscription, account.holds[order], currency, version, at, end, listed, order)
    subscription.renew(at)


async def resize(unit: UnitOfWork, subscription: Subscription, flavor_id: str) -> Decided:
    """Resize the (stopped) instance; an upgrade pays the rest of the term now."""
    instance = await unit.get(subscription.resource_id, Instance, checked=False)
    now = clock.now()
    books = await price_books(unit, subscription.region_id)
    before, currency, _ = quote(
        books,
        subscription.tenant_id,
        subscription.region_id,
        subscription.size,
        subscription.term,
        now,
    )
    await compute.resize_instance(unit, instance, flavor_id)
    after, _, version = quote(
        books,
        subscription.tenant_id,
        subscription.region_id,
        _size(instance),
        subscription.term,
        now,
    )
    upgrade = prorated(after - before, subscription.starts_at, subscription.ends_at, now)
    where = (subscription.tenant_id, subscription.region_id)
    listed = prorated(
        list_price(books, *where, _size(instance), subscription.term, now)
        - list_price(books, *where, subscription.size, subscription.term, now),
        subscription.starts_at,
        subscription.ends_at,
        now,
    )
    subscription.resize(_size(instance), upgrade)
    order = None
    if upgrade > 0:
        account = await billing.account_of(unit, subscription.tenant_id)
        order = _spend(
            account,
            subscription,
            upgrade,
            currency,
            version,
            now,
            subscription.ends_at,
            listed,
            kind="upgrade",
        )
        await billing.enforce_standing(unit, account, now)
    return Decided(
        resource_id=subscription.id, body={"order_id": order, "amount_minor": max(upgrade, 0)}
    )


async def cancel(unit: UnitOfWork, subscription: Subscription) -> None:
    """No refund of the term paid; a held renewal is let go; on-demand metering resumes."""
    if not subscription.covers:
        raise InvalidState(f"the subscription is {subscription.status}")
    if subscription.renewal_order is not None:
        account = await billing.account_of(unit, subscription.tenant_id)
        account.void_hold(subscription.renewal_order, "subscription cancelled")
    subscription.cancel("cancelled by the tenant")
