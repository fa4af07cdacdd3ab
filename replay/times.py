"""Times on the command line: ISO 8601, read as UTC when no offset is given."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

EXAMPLE = "2026-03-01T12:00:00Z"


def parse_time(text: str) -> datetime:
    """An argparse ``type``: a malformed time is a usage error (exit 2)."""
    if text.strip().lower() == "now":
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (for example {EXAMPLE} or 2026-03-01)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()
