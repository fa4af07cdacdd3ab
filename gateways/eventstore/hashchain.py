"""The hash chain that lets an auditor prove no stored event was altered or removed.

Each event's hash covers the previous event's hash and every stored byte of the event,
so changing, inserting or deleting any event breaks every link after it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable

from gateways.eventstore.records import RecordedEvent

GENESIS = bytes(32)


def _frame(data: bytes) -> bytes:
    # Length prefixes keep field boundaries unambiguous ("ab"+"c" differs from "a"+"bc").
    return struct.pack(">I", len(data)) + data


def link(
    previous: bytes,
    *,
    position: int,
    originator_id: str,
    originator_version: int,
    topic: str,
    state: bytes,
    metadata: bytes,
    tenant_id: str | None,
) -> bytes:
    """The chain hash of one event, given the chain hash before it."""
    digest = hashlib.sha256(previous)
    digest.update(struct.pack(">qq", position, originator_version))
    digest.update(_frame(originator_id.encode()))
    # The tenant column decides who may read the event, so it is covered too.
    digest.update(b"\x00" if tenant_id is None else b"\x01" + _frame(tenant_id.encode()))
    digest.update(_frame(topic.encode()))
    digest.update(_frame(state))
    digest.update(_frame(metadata))
    return digest.digest()


def expected_hash(previous: bytes, event: RecordedEvent) -> bytes:
    return link(
        previous,
        position=event.position,
        originator_id=event.originator_id,
        originator_version=event.originator_version,
        topic=event.topic,
        state=event.state,
        metadata=event.metadata,
        tenant_id=event.tenant_id,
    )


class ChainBreak(Exception):
    """The first event whose stored hash does not follow from the events before it."""

    def __init__(self, position: int, originator_id: str, originator_version: int) -> None:
        super().__init__(
            f"hash chain broken at position {position} ({originator_id} v{originator_version})"
        )
        self.position = position
        self.originator_id = originator_id
        self.originator_version = originator_version


class ChainVerifier:
    """Feed it events in position order; it raises ``ChainBreak`` at the first bad link."""

    def __init__(self, previous: bytes = GENESIS) -> None:
        self.previous = previous
        self.checked = 0

    def feed(self, events: Iterable[RecordedEvent]) -> None:
        for event in events:
            if event.chain_hash != expected_hash(self.previous, event):
                raise ChainBreak(event.position, event.originator_id, event.originator_version)
            self.previous = event.chain_hash
            self.checked += 1
