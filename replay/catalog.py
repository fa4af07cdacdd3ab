"""The projections the platform runs live, as replay verifies and rebuilds them.

The same list as ``api.bootstrap.Platform.projections`` (a test holds the two equal);
replay keeps its own copy so that it does not import the whole server to read it.
"""

from __future__ import annotations

from projections.audit.log import AuditLog
from projections.projection import Projection
from projections.resources.documents import ResourceDocuments
from projections.resources.index import ResourceIndex


def live_projections(schema: str) -> list[Projection]:
    return [ResourceIndex(schema), ResourceDocuments(schema), AuditLog(schema)]


def in_schema(projection: Projection, schema: str) -> Projection:
    """The same projection writing its tables into another schema (a scratch one)."""
    return type(projection)(schema)  # type: ignore[call-arg]
