"""Server-sent events: the caller's tenant's events, live, resumable by position.

Secret fields are redacted (``wire.export``); a project-scoped sub-account sees only the
events of its projects and of the resources in them.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from api.call import Call
from api.routing import Router
from domain.errors import ValidationFailed
from gateways.bus import wire
from gateways.eventstore.records import RecordedEvent
from gateways.waiting import wait_any
from projections.resources.queries import DOCUMENTS
from projections.resources.scope import ProjectScope
from projections.runner import wait_for_position

router = Router()
HEARTBEAT_SECONDS = 15.0


class EventStreamQuery(msgspec.Struct, kw_only=True):
    after: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Start after this position; ``Last-Event-ID`` (set by browsers on reconnect) wins."""
    types: str | None = None
    """Comma-separated event types to keep (``Created,Frozen``); default all."""


def _resume_position(call: Call, query: EventStreamQuery) -> int:
    last_event_id = call.request.headers.get("Last-Event-ID")
    if last_event_id:
        try:
            return int(last_event_id)
        except ValueError:
            raise ValidationFailed("Last-Event-ID must be a position this stream sent") from None
    return query.after or 0


@router.route(
    "GET",
    "/v1/events",
    summary="Server-sent events of the caller's tenant, from a position",
    action="monitor:event:read",
    query=EventStreamQuery,
    tags=("events",),
    media_type="text/event-stream",
)
async def stream_events(call: Call) -> web.StreamResponse:
    query: EventStreamQuery = call.query
    position = _resume_position(call, query)
    tenant_id = call.me.tenant_id
    wanted = None if not query.types else {t.strip() for t in query.types.split(",")}
    store = call.platform.store
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(call.request)
    projects = call.me.projects
    try:
        async with store.appended() as appended:
            while True:
                appended.clear()
                # Staff see every event; a tenant only its own (read through the tenant index).
                batch = await store.read_all(after=position, limit=500, tenant_id=tenant_id)
                shown: list[RecordedEvent] | None = batch
                if projects is not None and batch:
                    shown = await _in_projects(call, batch, projects)
                if shown is None:  # the documents lag: decide these once they caught up
                    await response.write(b": keep-alive\n\n")
                    continue
                for event in shown:
                    exported = wire.export(event)
                    if wanted is not None and exported.type not in wanted:
                        continue
                    await response.write(
                        b"id: %d\nevent: %s\ndata: %s\n\n"
                        % (event.position, exported.type.encode(), msgspec.json.encode(exported))
                    )
                if batch:
                    position = batch[-1].position
                if len(batch) == 500:
                    continue
                if not await wait_any(appended, timeout=HEARTBEAT_SECONDS):
                    await response.write(b": keep-alive\n\n")
    except ConnectionResetError:
        pass  # the client went away; it resumes with Last-Event-ID
    return response


async def _in_projects(
    call: Call, batch: list[RecordedEvent], projects: tuple[str, ...]
) -> list[RecordedEvent] | None:
    """A project-scoped sub-account's part of ``batch``; None while the documents lag."""
    pool, schema = call.platform.store.pool, call.platform.settings.schema
    if not await wait_for_position(pool, schema, DOCUMENTS, batch[-1].position, HEARTBEAT_SECONDS):
        return None
    return await ProjectScope(schema).visible(pool, batch, projects)
