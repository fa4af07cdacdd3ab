"""Prometheus metrics of the pipeline itself: projection lag, relay lag, webhook backlog."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from api.call import Call
from api.routing import Router
from gateways.bus.relay import EventRelay
from gateways.webhooks.deliveries import DeliveryLog
from gateways.webhooks.queries import DeliveryQueries
from projections.checkpoints import Checkpoints

router = Router()


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
    stored = GaugeMetricFamily(
        "scloud_store_head_position", "Position of the newest stored event.", value=head
    )
    lag = GaugeMetricFamily(
        "scloud_projection_lag_events", "Events stored but not yet applied.", labels=["projection"]
    )
    for projection in platform.projections():
        position = await checkpoints.read(pool, projection.name)
        lag.add_metric([projection.name], head - position)
    relay = GaugeMetricFamily("scloud_relay_lag_events", "Events stored but not yet in JetStream.")
    relayed = await _relay_position(call)
    if relayed is not None:
        relay.add_metric([], head - relayed)
    backlog = GaugeMetricFamily(
        "scloud_webhook_backlog_events",
        "A webhook's tenant events not yet delivered.",
        labels=["webhook"],
    )
    try:
        counts = await DeliveryQueries(DeliveryLog(platform.settings.schema)).backlog(pool)
    except asyncpg.UndefinedTableError:
        counts = {}
    for webhook_id, count in sorted(counts.items()):
        backlog.add_metric([webhook_id], count)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families([stored, lag, relay, backlog]))
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


class _Families(Collector):
    """This request's readings, as one collector (prometheus_client escapes the labels)."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families
