"""Webhooks: a tenant's URLs that receive its events, signed; the secret is shown once.

Delivery log, redelivery and replay endpoints are in ``webhook_deliveries`` and are
served from this module's router too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.listing import Accepted, ListQuery, list_kind
from api.routes import webhook_deliveries
from api.routes.webhook_deliveries import delivery_log
from api.routing import Router
from api.services.executor import Decided, Outcome
from api.services.unit_of_work import UnitOfWork, other_tenants
from api.text import Body, Description
from domain.errors import ValidationFailed
from domain.subscriptions.webhook import Webhook, check_url
from gateways.webhooks.secrets import webhook_secrets
from gateways.webhooks.targets import check_target

router = Router()

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Pattern = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class CreateWebhook(Body, kw_only=True, forbid_unknown_fields=True):
    url: Url
    event_types: list[Pattern] = msgspec.field(default_factory=lambda: ["*"])
    """Globs over event types such as ``Instance.*`` or ``Tenant.Frozen``; ``*`` is all."""
    description: Description = ""
    paused: bool = False
    """Create it paused: nothing is sent until it is resumed."""


class UpdateWebhook(Body, kw_only=True, forbid_unknown_fields=True):
    url: Url | None = None
    event_types: list[Pattern] | None = None
    description: Description | None = None


class AllowPrivate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    allowed: bool


class WithSecret(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str
    position: int
    secret: str
    """Verifies ``Scloud-Signature``. Shown now only; rotate it if it is lost."""


class DeliveryState(msgspec.Struct, kw_only=True):
    position: int
    """Every event of the tenant up to here is delivered or filtered out."""
    failures: int
    """Consecutive failed attempts (0 once one succeeds)."""
    failing_since: str | None = None
    """The first of those failures; after ``SCLOUD_WEBHOOK_PAUSE_AFTER_HOURS`` it is paused."""
    next_attempt_at: str
    pending_delivery_id: str | None
    backlog: int = 0
    """The tenant's events after ``position`` (those the filters skip included)."""


class WebhookView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    url: str
    event_types: list[str]
    description: str
    status: str
    """``active``, ``paused``, ``dead_lettered`` or ``deleted``."""
    allow_private: bool
    dead_letter_reason: str | None
    pause_reason: str | None = None
    """Set when the platform paused it because its target kept failing."""
    delivery: DeliveryState | None = None


class WebhookPage(msgspec.Struct, kw_only=True):
    items: list[WebhookView]
    next_page_token: str | None


class WebhookQuery(ListQuery, kw_only=True):
    status: str | None = None


def tenant_of(call: Call) -> str:
    if call.me.tenant_id is None:
        raise ValidationFailed("webhooks belong to a tenant; sign in as one of its users")
    return call.me.tenant_id


async def webhook_of(unit: UnitOfWork, webhook_id: str, tenant_id: str | None) -> Webhook:
    """The webhook, if it belongs to ``tenant_id`` (None: platform staff, any tenant's)."""
    webhook = await unit.get(webhook_id, Webhook, checked=True)
    if tenant_id is not None and webhook.tenant_id != tenant_id:
        raise other_tenants(webhook_id)
    return webhook


async def _with_secret(call: Call, outcome: Outcome) -> web.Response:
    """Answer with the webhook's current secret, derived again: it is stored nowhere.

    A first answer has it from the decision itself (no read after the write, which could
    fail after the commit); a repeat of the request derives it from the webhook.
    """
    assert outcome.resource_id is not None
    if "secret" in outcome.body:
        return call.accepted(outcome)
    webhook = await call.platform.repository.get(outcome.resource_id, Webhook)
    secrets = webhook_secrets(call.platform.settings)
    outcome.body = {**outcome.body, "secret": secrets.secret(webhook.id, webhook.secret_salt)}
    return call.accepted(outcome)


@router.route(
    "POST",
    "/v1/webhooks",
    summary="Register a webhook; the answer holds its signing secret, once",
    action="monitor:webhook:create",
    body=CreateWebhook,
    response=WithSecret,
    status=202,
    tags=("webhooks",),
)
async def create_webhook(call: Call) -> web.Response:
    body: CreateWebhook = call.body
    tenant_id = tenant_of(call)
    secrets = webhook_secrets(call.platform.settings)

    async def decide(unit: UnitOfWork) -> Decided:
        await check_target(check_url(body.url), allow_private=False)
        webhook = Webhook(
            tenant_id=tenant_id,
            url=body.url,
            event_types=list(body.event_types),
            description=body.description,
            secret_salt=secrets.new_salt(),
            key_id=secrets.key_id,
            paused=body.paused,
        )
        unit.add(webhook)
        return Decided(
            resource_id=webhook.id,
            secrets={"secret": secrets.secret(webhook.id, webhook.secret_salt)},
        )

    return await _with_secret(call, await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/webhooks",
    summary="List webhooks",
    action="monitor:webhook:read",
    query=WebhookQuery,
    response=WebhookPage,
    tags=("webhooks",),
)
async def list_webhooks(call: Call) -> web.Response:
    return await list_kind(call, "whk", call.query, tenant_id=tenant_of(call), filters=("status",))


@router.route(
    "GET",
    "/v1/webhooks/{id}",
    summary="One webhook, with how far delivery has come (never its secret)",
    action="monitor:webhook:read",
    response=WebhookView,
    kind="whk",
    tags=("webhooks",),
)
async def get_webhook(call: Call) -> web.Response:
    document = await call.document(call.request.match_info["id"], "whk", "monitor:webhook:read")
    log, pool = await delivery_log(call), call.platform.store.pool
    cursor = await log.cursor(pool, document.resource_id)
    delivery: dict[str, Any] | None = None
    if cursor is not None:
        since = cursor.failing_since
        delivery = {
            "position": cursor.position,
            "failures": cursor.failures,
            "failing_since": since.isoformat() if since is not None and cursor.failures else None,
            "next_attempt_at": cursor.next_attempt_at.isoformat(),
            "pending_delivery_id": cursor.pending_delivery_id,
            "backlog": await log.backlog_of(pool, str(document.tenant_id), cursor),
        }
    return json_response(
        {**document.view, "delivery": delivery}, headers={"ETag": f'"{document.version}"'}
    )


@router.route(
    "PATCH",
    "/v1/webhooks/{id}",
    summary="Change a webhook's URL, event types or description",
    action="monitor:webhook:update",
    body=UpdateWebhook,
    response=Accepted,
    status=202,
    kind="whk",
    tags=("webhooks",),
)
async def update_webhook(call: Call) -> web.Response:
    body: UpdateWebhook = call.body
    tenant_id = tenant_of(call)
    webhook_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        webhook = await webhook_of(unit, webhook_id, tenant_id)
        if body.url is not None:
            await check_target(check_url(body.url), allow_private=webhook.allow_private)
        event_types = None if body.event_types is None else list(body.event_types)
        webhook.update(body.url, event_types, body.description)
        return Decided(resource_id=webhook.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


async def _change(call: Call, change: Callable[[Webhook], None]) -> web.Response:
    tenant_id = tenant_of(call)
    webhook_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        webhook = await webhook_of(unit, webhook_id, tenant_id)
        change(webhook)
        return Decided(resource_id=webhook.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/webhooks/{id}/actions/pause",
    summary="Pause deliveries; events wait and are sent on resume",
    action="monitor:webhook:update",
    response=Accepted,
    status=202,
    kind="whk",
    tags=("webhooks",),
)
async def pause_webhook(call: Call) -> web.Response:
    return await _change(call, Webhook.pause)


@router.route(
    "POST",
    "/v1/webhooks/{id}/actions/resume",
    summary="Resume a paused or dead-lettered webhook from where delivery stopped",
    action="monitor:webhook:update",
    response=Accepted,
    status=202,
    kind="whk",
    tags=("webhooks",),
)
async def resume_webhook(call: Call) -> web.Response:
    return await _change(call, Webhook.resume)


@router.route(
    "DELETE",
    "/v1/webhooks/{id}",
    summary="Delete a webhook; nothing more is sent (its delivery log stays)",
    action="monitor:webhook:delete",
    response=Accepted,
    status=202,
    kind="whk",
    tags=("webhooks",),
)
async def delete_webhook(call: Call) -> web.Response:
    return await _change(call, Webhook.delete)


@router.route(
    "POST",
    "/v1/webhooks/{id}/actions/rotate-secret",
    summary="Replace the signing secret; the answer holds the new one, once",
    action="monitor:webhook:update",
    response=WithSecret,
    status=202,
    kind="whk",
    tags=("webhooks",),
)
async def rotate_secret(call: Call) -> web.Response:
    tenant_id = tenant_of(call)
    webhook_id = call.request.match_info["id"]
    secrets = webhook_secrets(call.platform.settings)

    async def decide(unit: UnitOfWork) -> Decided:
        webhook = await webhook_of(unit, webhook_id, tenant_id)
        webhook.rotate_secret(secrets.new_salt(), secrets.key_id)
        return Decided(
            resource_id=webhook.id,
            secrets={"secret": secrets.secret(webhook.id, webhook.secret_salt)},
        )

    return await _with_secret(call, await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/admin/webhooks/{id}/actions/allow-private",
    summary="Allow (or refuse again) loopback, link-local and private targets for a webhook",
    action="admin:webhook:allow-private",
    body=AllowPrivate,
    response=Accepted,
    status=202,
    kind="whk",
    tags=("webhooks",),
)
async def allow_private(call: Call) -> web.Response:
    body: AllowPrivate = call.body
    webhook_id = call.request.match_info["id"]
    document = await call.document(webhook_id, "whk", "admin:webhook:allow-private")

    async def decide(unit: UnitOfWork) -> Decided:
        webhook = await webhook_of(unit, webhook_id, None)
        webhook.allow_private_targets(body.allowed)
        return Decided(resource_id=webhook.id)

    return call.accepted(await call.execute(decide, tenant_id=document.tenant_id))


router.endpoints.extend(webhook_deliveries.router.endpoints)
