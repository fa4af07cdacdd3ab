"""A person who signs in: platform staff, a tenant's owner, or one of its sub-accounts."""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState
from domain.secrets import secret


class User(Aggregate):
    id_prefix = "usr"
    secret_fields = secret(Created=("password_hash",), PasswordChanged=("password_hash",))

    def __init__(
        self,
        email: str,
        password_hash: str,
        roles: list[str],
        tenant_id: str | None,
        kind: str = "sub_account",
        custom_roles: list[str] | None = None,
        projects: list[str] | None = None,
    ) -> None:
        self.email = email
        self.password_hash = password_hash
        self.roles = list(roles)
        self.custom_roles = list(custom_roles or [])
        self.projects = None if projects is None else list(projects)
        self.tenant_id = tenant_id
        self.kind = kind
        """``platform``, ``owner`` or ``sub_account``."""
        self.disabled = False
        self.token_generation = 1
        """Bumped when old sign-ins must stop working (password change, disable)."""

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "tenant_id": self.tenant_id,
            "kind": self.kind,
            "roles": self.roles,
            "custom_roles": self.custom_roles,
            "projects": self.projects,
            "status": "disabled" if self.disabled else "active",
        }

    @event("PasswordChanged")
    def change_password(self, password_hash: str) -> None:
        self.password_hash = password_hash
        self.token_generation += 1

    @event("PermissionsChanged")
    def set_permissions(
        self, roles: list[str], custom_roles: list[str], projects: list[str] | None
    ) -> None:
        self.roles = list(roles)
        self.custom_roles = list(custom_roles)
        self.projects = None if projects is None else list(projects)

    def disable(self) -> None:
        if self.disabled:
            raise InvalidState("user is already disabled", user_id=self.id)
        if self.kind == "owner":
            raise InvalidState("a tenant's owner cannot be disabled", user_id=self.id)
        self._disabled()

    @event("Disabled")
    def _disabled(self) -> None:
        self.disabled = True
        self.token_generation += 1
