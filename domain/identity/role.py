"""A tenant's custom role: a named set of actions beyond the built-in roles."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import ValidationFailed

_SEGMENTS = 3


def check_actions(actions: list[str]) -> list[str]:
    for action in actions:
        parts = action.split(":")
        if action != "*" and (len(parts) > _SEGMENTS or not all(parts)):
            raise ValidationFailed(f"{action!r} is not an action pattern like compute:*:read")
    return actions


class Role(Aggregate):
    id_prefix = "role"

    def __init__(self, tenant_id: str, name: str, actions: list[str]) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.actions = check_actions(list(actions))

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "actions": self.actions,
        }

    @event("ActionsChanged")
    def set_actions(self, actions: list[str]) -> None:
        self.actions = check_actions(list(actions))
