"""A webhook's delivery log, manual redelivery, and replay from a position."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp import web

from api.call import Call, decode_page_token, encode_page_token, json_response
from api.listing import Accepted
from api.routing import Router
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork, other_tenants
from domain.errors import NotFound, ValidationFailed
from domain.subscriptions.webhook import Webhook
from gateways.webhooks.deliveries import DeliveryLog
from gateways.webhooks.queries import DeliveryQueries

router = Router()
_ready: dict[str, DeliveryQueries] = {}


async def delivery_log(call: Call) -> DeliveryQueries:
    """The log of this platform's schema; its tables are made on first use."""
    schema = call.platform.settings.schema
    found = _ready.get(schema)
    if found is None:
        log = DeliveryLog(schema)
        await log.ensure(call.platform.store.pool)
        found = _ready[schema] = DeliveryQueries(log)
    return found


class DeliveryQuery(msgspec.Struct, kw_only=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=500)] = 50
    page_token: str | None = None
    status: str | None = None
    """``succeeded``, ``retrying`` or ``failed``."""


class AttemptView(msgspec.Struct, kw_only=True):
    attempt: int
    attempted_at: str
    status_code: int | None
    latency_ms: float
    error: str | None


class DeliveryView(msgspec.Struct, kw_only=True):
    id: str
    webhook_id: str
    event_id: str
    position: int
    event_type: str
    resource_id: str
    status: str
    attempts: int
    created_at: str
    last_attempt_at: str
    last_status_code: int | None
    last_error: str | None
    redelivery_of: str | None
    attempt_log: list[AttemptView] | None = None
    """Only on a single delivery."""


class DeliveryPage(msgspec.Struct, kw_only=True):
    items: list[DeliveryView]
    next_page_token: str | None


class Replay(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    after: Annotated[int, msgspec.Meta(ge=0)]
    """Send again every matching event after this position, in order."""


async def _webhook_id(call: Call) -> str:
    """The path's webhook, if the caller may see it (404 otherwise)."""
    document = await call.document(call.request.match_info["id"], "whk", "monitor:webhook:read")
    return document.resource_id


async def _owned(unit: UnitOfWork, call: Call, webhook_id: str) -> Webhook:
    webhook = await unit.get(webhook_id, Webhook, checked=True)
    if webhook.tenant_id != call.me.tenant_id:
        raise other_tenants(webhook_id)
    return webhook


@router.route(
    "GET",
    "/v1/webhooks/{id}/deliveries",
    summary="A webhook's deliveries, newest first",
    action="monitor:webhook:read",
    query=DeliveryQuery,
    response=DeliveryPage,
    kind="whk",
    tags=("webhooks",),
)
async def list_deliveries(call: Call) -> web.Response:
    query: DeliveryQuery = call.query
    webhook_id = await _webhook_id(call)
    after = decode_page_token(query.page_token)
    items = await (await delivery_log(call)).page(
        call.platform.store.pool,
        webhook_id,
        limit=query.limit + 1,
        before=None if after is None else after[1],
        status=query.status,
    )
    token = None
    if len(items) > query.limit:
        items = items[: query.limit]
        token = encode_page_token(("", items[-1]["id"]))
    return json_response({"items": items, "next_page_token": token})


@router.route(
    "GET",
    "/v1/webhooks/{id}/deliveries/{delivery_id}",
    summary="One delivery with each of its attempts (time, status code, latency, error)",
    action="monitor:webhook:read",
    response=DeliveryView,
    kind="whk",
    tags=("webhooks",),
)
async def get_delivery(call: Call) -> web.Response:
    found = await _delivery(call, await _webhook_id(call))
    return json_response(found)


async def _delivery(call: Call, webhook_id: str) -> dict[str, Any]:
    delivery_id = call.request.match_info["delivery_id"]
    log = await delivery_log(call)
    found = await log.one(call.platform.store.pool, webhook_id, delivery_id)
    if found is None:
        raise NotFound(f"{delivery_id} does not exist", resource_id=delivery_id)
    return found


@router.route(
    "POST",
    "/v1/webhooks/{id}/deliveries/{delivery_id}/actions/redeliver",
    summary="Send one delivery's event again, once, under a new delivery id",
    action="monitor:webhook:update",
    response=Accepted,
    status=202,
    kind="whk",
    tags=("webhooks",),
)
async def redeliver(call: Call) -> web.Response:
    webhook_id = await _webhook_id(call)
    found = await _delivery(call, webhook_id)

    async def decide(unit: UnitOfWork) -> Decided:
        webhook = await _owned(unit, call, webhook_id)
        webhook.redeliver(found["id"], found["position"])
        return Decided(resource_id=webhook.id)

    return call.accepted(await call.execute(decide, tenant_id=call.me.tenant_id))


@router.route(
    "POST",
    "/v1/webhooks/{id}/actions/replay",
    summary="Deliver again every matching event after a position (resets the cursor)",
    action="monitor:webhook:update",
    body=Replay,
    response=Accepted,
    status=202,
    kind="whk",
    tags=("webhooks",),
)
async def replay(call: Call) -> web.Response:
    body: Replay = call.body
    webhook_id = call.request.match_info["id"]
    head = await call.platform.store.last_position()

    async def decide(unit: UnitOfWork) -> Decided:
        webhook = await _owned(unit, call, webhook_id)  # first: whose it is, then the rest
        if body.after > head:
            raise ValidationFailed(f"position {body.after} is beyond the last one, {head}")
        webhook.replay(body.after)
        return Decided(resource_id=webhook.id)

    return call.accepted(await call.execute(decide, tenant_id=call.me.tenant_id))
