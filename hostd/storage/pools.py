"""The host's own image pools: the only directories a step may read images from or write to.

The platform names paths in its steps (an image's file, a kernel, an import's pool); the
host checks each against the pools it was configured with (``SCLOUD_HOST_IMAGE_POOLS``),
after following symlinks, whoever sent the step. A registered image is only ever a file
the operator put in a pool, never ``/etc/shadow`` or another host file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from hostd.storage.port import StorageError

OUTSIDE = "image_path_outside_pool"


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def in_pools(location: str, pools: Sequence[Path]) -> Path:
    """The real file behind ``location``, which must lie (after symlinks) inside a pool."""
    given = Path(location)
    if given.is_absolute() and ".." not in given.parts:
        real = _real(given)
        for pool in pools:
            root = _real(pool)
            if real.is_relative_to(root) and real != root:
                return real
    raise StorageError(f"{OUTSIDE}: {location} is not in an image pool of this host")


def pool_dir(pool: str, pools: Sequence[Path]) -> Path:
    """``pool`` itself, which must be one of this host's pools (as configured, or its
    real path)."""
    given = Path(pool)
    if given.is_absolute() and ".." not in given.parts:
        real = _real(given)
        for root in pools:
            if given == root or real == _real(root):
                return given
    raise StorageError(f"{OUTSIDE}: {pool} is not an image pool of this host")
