"""A person or program that signs in: a platform admin, a tenant owner or a sub-account."""

from __future__ import annotations

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState


class User(Aggregate):
    id_prefix = "usr"

    def __init__(
        self, email: str, password_hash: str, roles: list[str], tenant_id: str | None
    ) -> None:
        self.email = email
        self.password_hash = password_hash
        self.roles = list(roles)
        self.tenant_id = tenant_id
        self.disabled = False

    @event("PasswordChanged")
    def change_password(self, password_hash: str) -> None:
        self.password_hash = password_hash

    def disable(self) -> None:
        if self.disabled:
            raise InvalidState("user is already disabled", user_id=self.id)
        self._disable()

    @event("Disabled")
    def _disable(self) -> None:
        self.disabled = True
