"""The hash chain, checked link by link over any source, naming every altered event.

After a bad link the check goes on from the stored hash, so one altered event is named
alone rather than breaking everything after it; a removed event shows as a bad link at
the event that followed it.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from gateways.eventstore.hashchain import GENESIS, expected_hash
from replay.source import EventSource, batches


class BadLink(msgspec.Struct, frozen=True):
    position: int
    resource_id: str
    version: int
    event: str
    after: int
    """The position checked before it: a gap may be removed events (or an ordinary hole)."""


class ChainReport(msgspec.Struct, kw_only=True):
    checked: int = 0
    last_position: int = 0
    bad: list[BadLink] = []
    gaps: int = 0
    """Places in a partial source where events it does not hold sit between two of its own."""
    redacted: int = 0
    """Events of an unsealed export whose secrets were redacted: their links were not checked."""

    @property
    def intact(self) -> bool:
        return not self.bad


async def check_chain(
    source: EventSource,
    *,
    max_bad: int = 20,
    on_batch: Callable[[int, int], None] | None = None,
) -> ChainReport:
    report = ChainReport()
    previous = GENESIS
    async for batch in batches(source, on_batch=on_batch):
        recorded = (
            {} if source.complete else await source.previous_hashes([e.position for e in batch])
        )
        for event in batch:
            before = recorded.get(event.position, previous)
            if report.checked and before != previous:
                report.gaps += 1
            if event.position in source.redacted:
                report.redacted += 1  # its stored bytes are not here; its hash still links
            elif event.chain_hash != expected_hash(before, event):
                report.bad.append(
                    BadLink(
                        event.position,
                        event.originator_id,
                        event.originator_version,
                        event.topic.rpartition(":")[2],
                        report.last_position,
                    )
                )
                if len(report.bad) >= max_bad:
                    return report
            previous = event.chain_hash or GENESIS
            report.checked += 1
            report.last_position = event.position
    return report


def describe(report: ChainReport, source: str) -> list[str]:
    if report.intact:
        lines = [
            f"hash chain intact: {report.checked - report.redacted} events up to position "
            f"{report.last_position} ({source})"
        ]
        if report.redacted:
            lines.append(
                f"  {report.redacted} events not checked: their secret fields were redacted "
                "from this export (a sealed export, replay export --sealed, checks them too)"
            )
        if report.gaps:
            lines.append(
                f"  a partial copy: {report.gaps} places where events it does not hold sit "
                "between its own; each link was checked against the recorded previous hash"
            )
        return lines
    lines = [f"hash chain BROKEN: {len(report.bad)} altered or missing events ({source})"]
    for b in report.bad:
        if b.after == b.position - 1 or not b.after:
            why = "was altered"
        else:
            why = (
                f"was altered, or events between positions {b.after} and {b.position} were removed"
            )
        lines.append(
            f"  position {b.position}: {b.resource_id} v{b.version} {b.event} "
            f"does not match its hash: it {why}"
        )
    return lines
