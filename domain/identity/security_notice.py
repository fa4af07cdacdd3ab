"""A security notice: a mail telling an account that something changed on it.

It is queued in the same append as the change it tells of (an outbox), so a change is never
made without its notice; the sender delivers it later and records how that went.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate

QUEUED = "queued"
SENT = "sent"
FAILED = "failed"
MAX_ATTEMPTS = 5
"""Tries before a notice is given up (the mail server refused or was unreachable each time)."""


class SecurityNotice(Aggregate):
    id_prefix = "ntc"

    def __init__(
        self, user_id: str | None, tenant_id: str | None, to: str, subject: str, text: str
    ) -> None:
        self.user_id = user_id
        self.tenant_id = tenant_id
        self.to = to
        self.subject = subject
        self.text = text
        self.status = QUEUED
        self.attempts = 0
        self.last_error: str | None = None

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "user_id": self.user_id,
            "to": self.to,
            "subject": self.subject,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }

    @event("Sent")
    def sent(self) -> None:
        self.status = SENT
        self.attempts += 1

    def failed(self, cause: str) -> None:
        """One more try went wrong; after the last one the notice is given up."""
        self._failed(cause[:500], self.attempts + 1 >= MAX_ATTEMPTS)

    @event("Failed")
    def _failed(self, cause: str, final: bool) -> None:
        self.attempts += 1
        self.last_error = cause
        if final:
            self.status = FAILED


def password_changed(email: str, by_admin: bool) -> tuple[str, str]:
    who = "by a platform administrator's reset" if by_admin else "from a signed-in session"
    return (
        "Your SCloudStack password was changed",
        f"The password of {email} was changed {who}. Every earlier sign-in has ended.\n"
        "If this was not you, contact your administrator at once.",
    )


def api_key_created(email: str, name: str, actions: list[str] | None) -> tuple[str, str]:
    scope = "every permission of the account" if actions is None else ", ".join(actions)
    return (
        "A new SCloudStack API key",
        f"An API key named {name!r} was created for {email}, allowed: {scope}.\n"
        "If this was not you, revoke it and change your password.",
    )


def roles_changed(email: str, roles: list[str], custom_roles: list[str]) -> tuple[str, str]:
    every = ", ".join([*roles, *custom_roles]) or "none"
    return (
        "Your SCloudStack roles changed",
        f"The roles of {email} are now: {every}.",
    )


def role_actions_changed(name: str, actions: list[str]) -> tuple[str, str]:
    return (
        "A custom role of your SCloudStack tenant changed",
        f"The custom role {name!r} now allows: {', '.join(actions) or 'nothing'}.",
    )
