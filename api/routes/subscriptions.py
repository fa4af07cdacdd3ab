"""Prepaid subscriptions (tenant side): quote, subscribe, renew, resize, cancel."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import references, subscriptions
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.billing.subscription import quote, term_end
from domain.errors import ValidationFailed

router = Router()

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9]{0,11}-[0-9a-hjkmnp-tv-z]{26}$")]
Term = Literal["monthly", "annual"]
Days = Annotated[int, msgspec.Meta(ge=0, le=365)]


class Recovery(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Days in each stage after an unrenewed term ends (7 each when left out)."""

    grace_days: Days = 7
    stopped_days: Days = 7
    recycled_days: Days = 7


class Subscribe(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    instance_id: Id
    term: Term
    auto_renew: bool = True
    recovery: Recovery = msgspec.field(default_factory=Recovery)


class SubscribeQuery(msgspec.Struct, kw_only=True):
    validate_only: bool = False
    """Answer the quote only; nothing is ordered."""


class Quote(msgspec.Struct, kw_only=True):
    amount_minor: int
    currency: str
    price_version: str
    starts_at: str
    ends_at: str


class Subscribed(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str | None
    position: int
    order_id: str
    amount_minor: int
    ends_at: str


class SubscriptionView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    project_id: str | None
    resource_id: str
    region_id: str
    term: str
    auto_renew: bool
    size: dict[str, int | str | None]
    """vcpus, memory_mb, disk_gb and the flavor_id the current term was paid for."""
    renewal_size: dict[str, int | str | None]
    starts_at: str
    ends_at: str
    amount_minor: int
    recovery: dict[str, int]
    status: str
    """``active``, then, unrenewed: ``grace``, ``stopped``, ``recycled``, ``purged``; or
    ``cancelled`` (metered on demand again)."""
    stage_since: str | None
    renewal_order: str | None
    terms: int


class SubscriptionPage(msgspec.Struct, kw_only=True):
    items: list[SubscriptionView]
    next_page_token: str | None


class AutoRenew(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    auto_renew: bool


class ResizeSubscription(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    flavor_id: Id


def _tenant(call: Call) -> str:
    if call.me.tenant_id is None:
        raise ValidationFailed("subscriptions belong to a tenant")
    return call.me.tenant_id


@router.route(
    "POST",
    "/v1/billing/subscriptions",
    summary="Pay an instance's monthly or annual term in advance (?validate_only=true quotes)",
    action="billing:subscription:create",
    body=Subscribe,
    query=SubscribeQuery,
    response=Subscribed,
    status=202,
    tags=("billing",),
)
async def subscribe(call: Call) -> web.Response:
    body: Subscribe = call.body
    tenant_id = _tenant(call)
    recovery = msgspec.structs.asdict(body.recovery)
    scope = references.Scope(tenant_id=tenant_id, projects=call.me.projects)
    if call.query.validate_only:
        unit = UnitOfWork(call.platform.repository)
        instance = await references.instance(unit, scope, body.instance_id)
        now = clock.now()
        amount, currency, version = quote(
            await subscriptions.price_books(unit, instance.region_id),
            tenant_id,
            instance.region_id,
            {
                "vcpus": instance.vcpus,
                "memory_mb": instance.memory_mb,
                "disk_gb": instance.disk_gb,
                "flavor_id": instance.flavor_id,
            },
            body.term,
            now,
        )
        return json_response(
            Quote(
                amount_minor=amount,
                currency=currency,
                price_version=version,
                starts_at=now.isoformat(),
                ends_at=term_end(now, body.term).isoformat(),
            )
        )

    async def decide(unit: UnitOfWork) -> Decided:
        return await subscriptions.subscribe(
            unit, tenant_id, body.instance_id, body.term, body.auto_renew, recovery, scope.projects
        )

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/billing/subscriptions",
    summary="List the tenant's subscriptions",
    action="billing:subscription:read",
    query=ListQuery,
    response=SubscriptionPage,
    tags=("billing",),
)
async def list_subscriptions(call: Call) -> web.Response:
    return await list_kind(
        call, "sub", call.query, tenant_id=_tenant(call), projects=call.me.projects
    )


@router.route(
    "GET",
    "/v1/billing/subscriptions/{id}",
    summary="One subscription",
    action="billing:subscription:read",
    response=SubscriptionView,
    kind="sub",
    tags=("billing",),
)
async def get_subscription(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "sub", "billing:subscription:read")
    )


async def _act(call: Call, verb: str) -> web.Response:
    tenant_id = _tenant(call)
    sub_id = call.request.match_info["id"]
    await call.document(sub_id, "sub", f"billing:subscription:{verb}")
    body = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        sub = await subscriptions.subscription_of(unit, sub_id, tenant_id)
        if isinstance(body, AutoRenew):
            sub.set_auto_renew(body.auto_renew)
        elif isinstance(body, ResizeSubscription):
            return await subscriptions.resize(unit, sub, body.flavor_id)
        elif verb == "renew":
            return await subscriptions.renew(unit, sub)
        else:
            await subscriptions.cancel(unit, sub)
        return Decided(resource_id=sub.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


def _action(verb: str, summary: str, body: type[msgspec.Struct] | None = None) -> None:
    @router.route(
        "POST",
        f"/v1/billing/subscriptions/{{id}}/actions/{verb}",
        summary=summary,
        action=f"billing:subscription:{verb}",
        body=body,
        response=Accepted,
        status=202,
        kind="sub",
        tags=("billing",),
    )
    async def handler(call: Call) -> web.Response:
        return await _act(call, verb)

    handler.__name__ = handler.__qualname__ = f"{verb.replace('-', '_')}_subscription"


_action("renew", "Renew: hold the next term's price now (a lapsed one restarts from now)")
_action("set-auto-renew", "Turn automatic renewal on or off", AutoRenew)
_action(
    "resize",
    "Resize the stopped instance: an upgrade pays the rest of the term",
    ResizeSubscription,
)
_action("cancel", "End the subscription: the instance is metered on demand from now")
