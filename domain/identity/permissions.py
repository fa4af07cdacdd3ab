"""Actions, roles and the one function that decides whether a principal may act.

An action is ``service:resource:verb`` (``compute:instance:create``). Roles are sets
of action patterns; ``*`` matches one whole segment or everything after it.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from domain.errors import Forbidden

TENANT_ROLES: dict[str, tuple[str, ...]] = {
    "owner": ("*",),
    "admin": (
        "iam:*",
        "compute:*",
        "storage:*",
        "network:*",
        "monitor:*",
        "audit:*:read",
        "quota:*:read",
        "tenant:*:read",
        "billing:*:read",
    ),
    "operator": (
        "compute:*",
        "storage:*",
        "network:*",
        "monitor:*",
        "quota:*:read",
        "tenant:*:read",
        "iam:project:read",
    ),
    "read-only": ("*:*:read",),
    "billing": (
        "billing:*",
        "tenant:*:read",
        "quota:*:read",
        "compute:region:read",
        "compute:flavor:read",
    ),
}
"""Built-in roles a tenant's users can hold."""

PLATFORM_ROLES: dict[str, tuple[str, ...]] = {
    "platform:admin": ("*",),
    "platform:operator": ("*:*:read", "admin:host:*", "admin:instance:*"),
}
"""Roles of the operations side; these principals act across tenants."""

SELF_SERVICE = "self"
"""The service of actions on the caller's own account and requests (``self:session:read``,
``self:operation:read``, ``self:password:change``). Every role grants them, so every
signed-in user holds them; an API key holds one only if it lists it (or a pattern such as
``self:*``), so a key narrowed to one job cannot reach its user's account."""

SESSION_ONLY = frozenset({"self:password:change"})
"""Actions no API key may take, whatever it lists: a key is a credential handed to programs,
and one that could set its user's password could become the user."""

TENANT_FREE_VERBS = frozenset({"read", "console"})
"""What a frozen tenant may still do: read, and look at its instances' consoles (which
changes nothing); only roles that grant ``compute:instance:console`` may do the latter."""


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling, resolved from a token or an API key, with what they may do."""

    user_id: str
    tenant_id: str | None
    """None for platform staff."""
    roles: tuple[str, ...]
    custom_actions: tuple[str, ...] = ()
    """Actions from the tenant's custom roles the user holds."""
    projects: tuple[str, ...] | None = None
    """Projects a sub-account is limited to; None means all of its tenant's."""
    key_actions: tuple[str, ...] | None = None
    """An API key's narrower permissions; None means the user's own."""
    api_key_id: str | None = None
    tenant_frozen: bool = False

    @property
    def is_platform(self) -> bool:
        return self.tenant_id is None


class ApiKeyNotAllowed(Forbidden):
    code = "api_key_not_allowed"


def _matches(pattern: str, action: str) -> bool:
    if pattern == "*":
        return True
    wanted = pattern.split(":")
    given = action.split(":")
    for i, part in enumerate(wanted):
        if part == "*" and i == len(wanted) - 1:
            return True
        if i >= len(given) or (part != "*" and part != given[i]):
            return False
    return len(wanted) == len(given)


def grants(patterns: Iterable[str], action: str) -> bool:
    return any(_matches(p, action) for p in patterns)


KEY_REFUSED = "an API key may not do this: sign in as the user"


def is_self_service(action: str) -> bool:
    return action.split(":", 1)[0] == SELF_SERVICE


def role_actions(principal: Principal) -> tuple[str, ...]:
    table = PLATFORM_ROLES if principal.is_platform else TENANT_ROLES
    actions: list[str] = [f"{SELF_SERVICE}:*"]  # every role's, even a user's with none
    for role in principal.roles:
        actions.extend(table.get(role, ()))
    actions.extend(principal.custom_actions)
    return tuple(actions)


def decide(
    principal: Principal,
    action: str,
    *,
    tenant_id: str | None = None,
    project_id: str | None = None,
) -> str | None:
    """None when allowed, else the reason it is not (for the audit log)."""
    if action in SESSION_ONLY and principal.api_key_id is not None:
        return KEY_REFUSED
    if not principal.is_platform:
        if action.startswith("admin:"):
            return "platform action"
        if tenant_id is not None and tenant_id != principal.tenant_id:
            return "another tenant's resource"
        # One's own account stays one's own in a frozen tenant: a new password starts nothing.
        if (
            principal.tenant_frozen
            and not is_self_service(action)
            and action.rsplit(":", 1)[-1] not in TENANT_FREE_VERBS
        ):
            return "tenant is frozen"
        if (
            principal.projects is not None
            and project_id is not None
            and project_id not in principal.projects
        ):
            return "outside the sub-account's projects"
    if not grants(role_actions(principal), action):
        return f"no role grants {action}"
    if principal.key_actions is not None and not grants(principal.key_actions, action):
        return f"the API key does not grant {action}"
    return None


def refusal_kind(reason: str) -> type[Forbidden]:
    """The error class that answers a refusal for ``reason`` (what ``decide`` gave)."""
    return ApiKeyNotAllowed if reason == KEY_REFUSED else Forbidden
