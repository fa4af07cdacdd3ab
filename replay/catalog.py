"""The projections the platform runs live, as replay verifies and rebuilds them."""

from __future__ import annotations

from projections.projection import Projection


class _SchemaOnly:
    """All that ``Platform.projections`` reads of a platform: its settings' schema."""

    def __init__(self, schema: str) -> None:
        from gateways.settings import Settings

        self.settings = Settings(schema=schema)


def live_projections(schema: str) -> list[Projection]:
    """Exactly the list the worker runs (``Platform.projections``), built for ``schema``.

    Asking the composition root rather than keeping a second list means a projection added
    to the platform is verified and rebuildable here with no change to replay. (The import
    is lazy: it brings in the server; ``scloud`` has loaded it already.)
    """
    from api.bootstrap import Platform

    return Platform.projections(_SchemaOnly(schema))  # type: ignore[arg-type]


def in_schema(projection: Projection, schema: str) -> Projection:
    """The same projection writing its tables into another schema (a scratch one)."""
    return type(projection)(schema)  # type: ignore[call-arg]
