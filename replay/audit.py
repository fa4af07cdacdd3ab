"""``audit``: who did what, when, from where, and how it ended, from the Operation events.

Every command leaves an Operation (succeeded, failed or denied); its first event's
envelope says who sent it, under which request and command id, and when.
"""

from __future__ import annotations

import csv
import fnmatch
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import msgspec
from rich.table import Table
from rich.text import Text

from domain.operations.operation import Operation
from gateways.eventstore.records import RecordedEvent
from replay.aggregates import OPERATION_TOPIC, apply, envelope_of
from replay.console import Consoles
from replay.source import EventSource, batches


class AuditEntry(msgspec.Struct, kw_only=True):
    occurred_at: datetime
    operation_id: str
    tenant_id: str | None
    actor_kind: str | None
    actor_id: str
    via_key: str | None
    action: str
    resource_id: str | None
    request_id: str | None
    command_id: str | None
    source: str | None
    outcome: str
    error_code: str | None
    error_detail: str | None
    finished_at: datetime | None
    position: int


COLUMNS = tuple(AuditEntry.__struct_fields__)


@dataclass(frozen=True)
class AuditFilter:
    tenant: str | None = None
    actor: str | None = None
    """A user id, or the API key it acted through."""
    action: str | None = None
    """Exact, or a shell pattern such as ``iam:*``."""
    resource: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    """Inclusive."""
    until: datetime | None = None
    """Exclusive."""

    def matches(self, entry: AuditEntry) -> bool:
        return (
            (self.tenant is None or entry.tenant_id == self.tenant)
            and (self.actor is None or self.actor in (entry.actor_id, entry.via_key))
            and (self.action is None or fnmatch.fnmatchcase(entry.action, self.action))
            and (self.resource is None or entry.resource_id == self.resource)
            and (self.outcome is None or entry.outcome == self.outcome)
            and (self.since is None or entry.occurred_at >= self.since)
            and (self.until is None or entry.occurred_at < self.until)
        )


class _Folding:
    """One operation being folded: the aggregate and what its first event's envelope said."""

    def __init__(self, operation: Operation, first: AuditEntry) -> None:
        self.operation = operation
        self.first = first


async def audit_entries(
    source: EventSource,
    wanted: AuditFilter,
    *,
    on_batch: Callable[[int, int], None] | None = None,
) -> tuple[list[AuditEntry], int]:
    """Matching entries in time order, and how many operations lacked their first event."""
    folding: dict[str, _Folding] = {}
    orphans: set[str] = set()
    async for batch in batches(source, topic_prefix=OPERATION_TOPIC, on_batch=on_batch):
        for event in batch:
            current = folding.get(event.originator_id)
            if current is None and event.originator_version != 1:
                orphans.add(event.originator_id)  # its start is outside this source
                continue
            operation = apply(None if current is None else current.operation, event)
            assert isinstance(operation, Operation)
            if current is None:
                folding[event.originator_id] = _Folding(operation, _first(operation, event))
            else:
                current.operation = operation
    entries = [_entry(f) for f in folding.values()]
    matching = sorted((e for e in entries if wanted.matches(e)), key=_when)
    return matching, len(orphans)


def _when(entry: AuditEntry) -> tuple[datetime, int]:
    return entry.occurred_at, entry.position


def _first(operation: Operation, event: RecordedEvent) -> AuditEntry:
    envelope = envelope_of(event)
    return AuditEntry(
        occurred_at=envelope.occurred_at if envelope else operation.created_on,
        operation_id=operation.id,
        tenant_id=operation.tenant_id,
        actor_kind=str(envelope.actor.kind) if envelope else None,
        actor_id=operation.actor_id,
        via_key=envelope.actor.via if envelope else None,
        action=operation.action,
        resource_id=operation.resource_id,
        request_id=operation.request_id,
        command_id=envelope.command_id if envelope else None,
        source=operation.source,
        outcome=operation.status,
        error_code=None,
        error_detail=None,
        finished_at=None,
        position=event.position,
    )


def _entry(folding: _Folding) -> AuditEntry:
    operation = folding.operation
    return msgspec.structs.replace(
        folding.first,
        outcome=operation.status,
        error_code=operation.error_code,
        error_detail=operation.error_detail,
        finished_at=operation.finished_at,
    )


# -- output ----------------------------------------------------------------------------


def write_jsonl(entries: Sequence[AuditEntry]) -> None:
    encode = msgspec.json.Encoder().encode
    for entry in entries:
        sys.stdout.write(encode(entry).decode() + "\n")


def write_csv(entries: Sequence[AuditEntry]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(COLUMNS)
    for entry in entries:
        row = msgspec.to_builtins(entry)
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])


def write_table(entries: Sequence[AuditEntry], consoles: Consoles) -> None:
    table = Table(show_lines=False, header_style="bold")
    for column in ("time (UTC)", "tenant", "actor", "action", "resource", "outcome", "request"):
        table.add_column(column, overflow="fold")
    for e in entries:
        actor = f"{e.actor_kind or '?'}:{e.actor_id}" + (f" via {e.via_key}" if e.via_key else "")
        outcome = e.outcome + (f" ({e.error_code})" if e.error_code else "")
        cells = (
            e.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            e.tenant_id or "-",
            actor,
            e.action,
            e.resource_id or "-",
            outcome,
            e.request_id or e.command_id or "-",
        )
        table.add_row(*(Text(c) for c in cells))
    consoles.out.print(table)
    consoles.out.print(Text(f"{len(entries)} operations"))
