"""A region: one data centre, what tenants choose when they place anything.

Its name (``eu-west-1``) is its code and never changes: quota scopes and host
configuration may quote it. The display name and description are free to edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState, ValidationFailed
from domain.inventory.name_claim import check_name
from domain.inventory.quota_defaults import check_quota_defaults, merged

MAX_TEXT = 500


def _check_text(value: str, field: str, maximum: int = MAX_TEXT) -> str:
    if len(value) > maximum or not value.isprintable():
        raise ValidationFailed(f"{field}: up to {maximum} printable characters", field=field)
    return value


class Region(Aggregate):
    id_prefix = "rgn"

    def __init__(
        self,
        name: str,
        display_name: str,
        description: str,
        enabled: bool,
        quota_defaults: dict[str, int],
    ) -> None:
        self.name = name
        self.display_name = display_name
        self.description = description
        self.enabled = enabled
        self.quota_defaults = dict(quota_defaults)

    @classmethod
    def open(
        cls,
        name: str,
        display_name: str | None = None,
        description: str = "",
        enabled: bool = True,
        quota_defaults: Mapping[str, int] | None = None,
    ) -> Region:
        check_name(name)
        display = _check_text(display_name or name, "display_name", 100)
        if not display.strip():
            raise ValidationFailed("display_name cannot be blank", field="display_name")
        defaults = merged({}, check_quota_defaults(quota_defaults or {}))
        return cls(
            name=name,
            display_name=display,
            description=_check_text(description, "description"),
            enabled=enabled,
            quota_defaults=defaults,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "name": self.name,
            "display_name": self.display_name,
            "description": self.description,
            "status": "enabled" if self.enabled else "disabled",
            "quota_defaults": self.quota_defaults,
        }

    def describe(self, display_name: str | None, description: str | None) -> None:
        display = self.display_name if display_name is None else display_name
        text = self.description if description is None else description
        if not _check_text(display, "display_name", 100).strip():
            raise ValidationFailed("display_name cannot be blank", field="display_name")
        _check_text(text, "description")
        if (display, text) != (self.display_name, self.description):
            self._described(display, text)

    @event("DescriptionChanged")
    def _described(self, display_name: str, description: str) -> None:
        self.display_name = display_name
        self.description = description

    def set_quota_defaults(self, limits: Mapping[str, int | None]) -> None:
        """Set (or, with None, drop) the region's default limit of some quota kinds."""
        changes = check_quota_defaults(limits)
        if merged(self.quota_defaults, changes) != self.quota_defaults:
            self._quota_defaults_set(changes)

    @event("QuotaDefaultsSet")
    def _quota_defaults_set(self, limits: dict[str, int | None]) -> None:
        self.quota_defaults = merged(self.quota_defaults, limits)

    def enable(self) -> None:
        if self.enabled:
            raise InvalidState(f"region {self.name} is already enabled", region_id=self.id)
        self._enabled()

    @event("Enabled")
    def _enabled(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        if not self.enabled:
            raise InvalidState(f"region {self.name} is already disabled", region_id=self.id)
        self._disabled()

    @event("Disabled")
    def _disabled(self) -> None:
        self.enabled = False
