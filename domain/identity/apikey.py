"""An API key: an id and a secret for programs, optionally narrower than its user."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.errors import InvalidState
from domain.secrets import secret


class ApiKey(Aggregate):
    id_prefix = "key"
    secret_fields = secret(Created=("secret_hash",))

    def __init__(
        self,
        user_id: str,
        tenant_id: str | None,
        name: str,
        secret_hash: str,
        actions: list[str] | None,
        expires_at: datetime | None,
    ) -> None:
        self.user_id = user_id
        self.tenant_id = tenant_id
        self.name = name
        self.secret_hash = secret_hash
        """SHA-256 of the secret: the secret itself is shown once and never stored."""
        self.actions = None if actions is None else list(actions)
        self.expires_at = expires_at
        self.revoked = False

    def usable(self) -> bool:
        return not self.revoked and (self.expires_at is None or self.expires_at > clock.now())

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user_id": self.user_id,
            "tenant_id": self.tenant_id,
            "name": self.name,
            "actions": self.actions,
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "status": "revoked" if self.revoked else "active",
        }

    def revoke(self) -> None:
        if self.revoked:
            raise InvalidState("the key is already revoked", key_id=self.id)
        self._revoked()

    @event("Revoked")
    def _revoked(self) -> None:
        self.revoked = True
