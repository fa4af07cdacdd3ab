"""Prometheus metrics of the pipeline itself: projection lag, relay lag, webhook backlog."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from api.call import Call
from api.routing import Router
from gateways.bus.relay import EventRelay
from gateways.webhooks.deliveries import DeliveryLog
from gateways.webhooks.queries import DeliveryQueries
from projections.checkpoints import Checkpoints

router = Router()


def _line(name: str, value: float, **labels: str) -> str:
    rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}"


async def _relay_position(call: Call) -> int | None:
    settings = call.platform.settings
    relay = EventRelay(
        call.platform.store,
        call.platform.js,
        stream=settings.stream_name,
        prefix=settings.subject_prefix,
    )
    try:
        return await relay.last_published()
    except Exception:  # no stream yet, or NATS away: the gauge is simply absent
        return None


@router.route(
    "GET",
    "/metrics",
    summary="Prometheus text: projection lag, relay lag, webhook backlog",
    action="admin:metrics:read",
    tags=("operations",),
    media_type="text/plain",
)
async def metrics(call: Call) -> web.Response:
    platform = call.platform
    pool = platform.store.pool
    head = await platform.store.last_position()
    checkpoints = Checkpoints(platform.settings.schema)
    lines = [
        "# HELP scloud_store_head_position Position of the newest stored event.",
        "# TYPE scloud_store_head_position gauge",
        _line("scloud_store_head_position", head),
        "# HELP scloud_projection_lag_events Events stored but not yet applied.",
        "# TYPE scloud_projection_lag_events gauge",
    ]
    for projection in platform.projections():
        position = await checkpoints.read(pool, projection.name)
        lines.append(
            _line("scloud_projection_lag_events", head - position, projection=projection.name)
        )
    relayed = await _relay_position(call)
    lines += [
        "# HELP scloud_relay_lag_events Events stored but not yet in JetStream.",
        "# TYPE scloud_relay_lag_events gauge",
    ]
    if relayed is not None:
        lines.append(_line("scloud_relay_lag_events", head - relayed))
    lines += [
        "# HELP scloud_webhook_backlog_events A webhook's tenant events not yet delivered.",
        "# TYPE scloud_webhook_backlog_events gauge",
    ]
    try:
        backlog = await DeliveryQueries(DeliveryLog(platform.settings.schema)).backlog(pool)
    except asyncpg.UndefinedTableError:
        backlog = {}
    for webhook_id, count in sorted(backlog.items()):
        lines.append(_line("scloud_webhook_backlog_events", count, webhook=webhook_id))
    return web.Response(
        text="\n".join(lines) + "\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Prometheus-Format": "0.0.4"},
    )
