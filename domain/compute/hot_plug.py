"""How far a running guest can grow without a restart: its hot-plug maxima.

A guest is defined with room above its size (vCPUs it can be given online, memory slots it
can be given DIMMs in); a resize within that room, growing only, is done live. The maxima are
recorded on the instance when its domain is (re)defined at a size, so replaying its history
never depends on today's policy.
"""

from __future__ import annotations

from typing import NamedTuple

HEADROOM = 4
"""A guest can grow live to this many times the size it was defined at."""
MAX_VCPUS = 64
MAX_MEMORY_MB = 256 * 1024
MEMORY_BLOCK_MB = 128
"""Linux onlines hot-added memory in 128 MiB blocks on x86-64: smaller steps restart."""


class Ceiling(NamedTuple):
    vcpus: int
    memory_mb: int


def ceiling(vcpus: int, memory_mb: int) -> Ceiling:
    """The maxima a guest defined at this size gets (never below the size itself)."""
    return Ceiling(
        max(vcpus, min(vcpus * HEADROOM, MAX_VCPUS)),
        max(memory_mb, min(memory_mb * HEADROOM, MAX_MEMORY_MB)),
    )


def fits_live(current: tuple[int, int], wanted: tuple[int, int], maxima: Ceiling | None) -> bool:
    """Whether going from ``current`` to ``wanted`` (vcpus, memory_mb) can be done live:
    growing only, within the maxima, memory in whole blocks."""
    if maxima is None:
        return False  # defined before hot-plug maxima existed: no room was left
    (vcpus, memory_mb), (new_vcpus, new_memory_mb) = current, wanted
    return (
        vcpus <= new_vcpus <= maxima.vcpus
        and memory_mb <= new_memory_mb <= maxima.memory_mb
        and (new_memory_mb - memory_mb) % MEMORY_BLOCK_MB == 0
    )
