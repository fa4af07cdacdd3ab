"""A person who signs in: platform staff, a tenant's owner, or one of its sub-accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import Forbidden, InvalidState
from domain.secrets import secret


class WrongPassword(Forbidden):
    """The current password given to change it is not the account's."""

    code = "wrong_password"


class User(Aggregate):
    id_prefix = "usr"
    locked_until: datetime | None = None
    """Sign-ins are refused until then (too many wrong passwords). A class default: users
    folded from snapshots made before it existed are unlocked."""
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
        self.locked_until = None  # whoever set it (the user, or a reset) may sign in

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    @event("LockedOut")
    def lock_out(self, until: datetime) -> None:
        """Too many wrong passwords: every API process refuses sign-ins until ``until``."""
        self.locked_until = until

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
