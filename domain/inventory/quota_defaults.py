"""Default quota limits an admin sets for a region (or for ``*``, every region)."""

from __future__ import annotations

from collections.abc import Mapping

from domain.errors import ValidationFailed
from domain.quota.kinds import QUOTA_KINDS

MAX_LIMIT = 10**12


def check_quota_defaults(
    limits: Mapping[str, int | None], field: str = "quota_defaults"
) -> dict[str, int | None]:
    """Known kinds only, each a limit from 0 to 10^12, or None to drop the default."""
    unknown = sorted(set(limits) - set(QUOTA_KINDS))
    if unknown:
        raise ValidationFailed(f"unknown quota kinds: {unknown}", field=field)
    for kind, value in limits.items():
        if value is not None and not 0 <= value <= MAX_LIMIT:
            raise ValidationFailed(f"{kind}: a limit runs from 0 to {MAX_LIMIT}", field=field)
    return dict(limits)


def merged(current: Mapping[str, int], changes: Mapping[str, int | None]) -> dict[str, int]:
    """``current`` with ``changes`` applied: a value sets a kind's default, None drops it."""
    result = dict(current)
    for kind, value in changes.items():
        if value is None:
            result.pop(kind, None)
        else:
            result[kind] = value
    return {kind: result[kind] for kind in QUOTA_KINDS if kind in result}
