"""Which of a batch of events a project-scoped sub-account may see.

A sub-account limited to some projects sees the events of those projects and of the
resources inside them, nothing else of its tenant (not its users, keys, billing or
webhooks). A resource's project is read from its document, so the documents must have
caught up with the events first (``wait_for_position`` on ``DOCUMENTS``).
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.schema import checked_schema


class ProjectScope:
    def __init__(self, schema: str) -> None:
        table = f"{checked_schema(schema)}.resource_documents"
        self._projects_of = (
            f"SELECT resource_id, project_id FROM {table} WHERE resource_id = ANY($1::text[])"
        )

    async def visible(
        self, pool: asyncpg.Pool, events: Sequence[RecordedEvent], projects: tuple[str, ...]
    ) -> list[RecordedEvent]:
        """The events of ``projects`` and of resources in them, in their order."""
        allowed = set(projects)
        others = list(
            dict.fromkeys(e.originator_id for e in events if e.originator_id not in allowed)
        )
        inside = {
            row[0] for row in await pool.fetch(self._projects_of, others) if row[1] in allowed
        }
        return [e for e in events if e.originator_id in allowed or e.originator_id in inside]
