"""Event histories for tests: several tenants' resources, each with a few events."""

from __future__ import annotations

import random

from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import AppendRequest, NewEvent

STATE = b'{"timestamp":{"_type_":"datetime_iso","_data_":"2026-01-01T00:00:00+00:00"}}'
EVENT_NAMES = ("Created", "Started", "Stopped", "Resized", "Deleted")


async def write_history(
    store: PostgresEventStore, resources: int, *, seed: int = 7, tenants: int = 3
) -> int:
    """Append interleaved events for ``resources`` resources; returns how many."""
    rng = random.Random(seed)
    kinds = ("i", "vol", "vpc")
    versions = {new_id(rng.choice(kinds)): 0 for _ in range(resources)}
    owners = {rid: f"tnt-{rng.randrange(tenants)}" for rid in versions}
    total = 0
    pending = list(versions)
    while pending:
        chosen = rng.sample(pending, min(len(pending), 40))
        events = []
        for rid in chosen:
            versions[rid] += 1
            context = CommandContext(actor=Actor.system("test"), tenant_id=owners[rid])
            name = EVENT_NAMES[min(versions[rid] - 1, len(EVENT_NAMES) - 1)]
            events.append(
                NewEvent(rid, versions[rid], f"test:Thing.{name}", STATE, context.metadata())
            )
            if versions[rid] >= 1 + rng.randrange(6):
                pending.remove(rid)
        await store.append(AppendRequest(events=tuple(events)))
        total += len(events)
    return total
