"""A tenant: an organisation with its own users, resources, quotas and balance."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState, ValidationFailed


class Tenant(Aggregate):
    id_prefix = "tnt"

    def __init__(self, name: str, currency: str, contact_email: str | None) -> None:
        self.name = name
        self.currency = currency
        self.contact_email = contact_email
        self.frozen = False
        self.freeze_reason: str | None = None
        self.balance_minor = 0

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.id,
            "name": self.name,
            "currency": self.currency,
            "contact_email": self.contact_email,
            "status": "frozen" if self.frozen else "active",
            "freeze_reason": self.freeze_reason,
            "balance_minor": self.balance_minor,
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

    def recharge(self, amount_minor: int, currency: str, reference: str) -> None:
        if amount_minor <= 0:
            raise ValidationFailed("a recharge must be a positive amount")
        if currency != self.currency:
            raise ValidationFailed(f"this tenant is billed in {self.currency}, not {currency}")
        self._recharged(amount_minor, currency, reference)

    @event("Recharged")
    def _recharged(self, amount_minor: int, currency: str, reference: str) -> None:
        self.balance_minor += amount_minor
