"""A project (resource group): how a tenant divides its resources among sub-accounts."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate


class Project(Aggregate):
    id_prefix = "prj"

    def __init__(self, tenant_id: str, name: str, description: str) -> None:
        self.tenant_id = tenant_id
        self.name = name
        self.description = description

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "description": self.description,
        }

    @event("Renamed")
    def rename(self, name: str, description: str) -> None:
        self.name = name
        self.description = description
