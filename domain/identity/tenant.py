"""A tenant: an organisation with its own users, resources and quotas.

Its money is in its billing account (``domain.billing.account``).
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState


class Tenant(Aggregate):
    id_prefix = "tnt"

    def __init__(self, name: str, currency: str, contact_email: str | None) -> None:
        self.name = name
        self.currency = currency
        self.contact_email = contact_email
        self.frozen = False
        self.freeze_reason: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.id,
            "name": self.name,
            "currency": self.currency,
            "contact_email": self.contact_email,
            "status": "frozen" if self.frozen else "active",
            "freeze_reason": self.freeze_reason,
        }

    @event("Updated")
    def update(self, name: str | None, contact_email: str | None) -> None:
        if name is not None:
            self.name = name
        if contact_email is not None:
            self.contact_email = contact_email

    def freeze(self, reason: str) -> None:
        if self.frozen:
            raise InvalidState("tenant is already frozen", tenant_id=self.id)
        self._frozen(reason)

    @event("Frozen")
    def _frozen(self, reason: str) -> None:
        self.frozen = True
        self.freeze_reason = reason

    def unfreeze(self) -> None:
        if not self.frozen:
            raise InvalidState("tenant is not frozen", tenant_id=self.id)
        self._unfrozen()

    @event("Unfrozen")
    def _unfrozen(self) -> None:
        self.frozen = False
        self.freeze_reason = None
