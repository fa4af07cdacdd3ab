"""A webhook: a tenant's URL that receives its events, signed, in position order.

The signing secret is never stored: it is derived from the platform's key and the
webhook's ``secret_salt`` (see ``gateways/webhooks/secrets.py``), so the event store
holds nothing that signs. Delivery progress (cursor, attempts) is the dispatcher's own
state; the aggregate records only what people decide: target, filters, pauses, replays.
"""

from __future__ import annotations

import re
from datetime import datetime
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState, NotFound, ValidationFailed
from domain.secrets import secret

ACTIVE = "active"
PAUSED = "paused"
DEAD_LETTERED = "dead_lettered"
DELETED = "deleted"

MAX_EVENT_TYPES = 20
MAX_URL_LENGTH = 2048
_PATTERN = re.compile(r"^[A-Za-z0-9_.*?\[\]!-]{1,100}$")


class WebhookUrlInvalid(ValidationFailed):
    code = "webhook_url_invalid"


class WebhookTargetNotPublic(ValidationFailed):
    """The URL resolves to a loopback, link-local, private or otherwise internal address."""

    code = "webhook_target_not_public"


class WebhookTargetUnresolvable(ValidationFailed):
    code = "webhook_target_unresolvable"


class WebhookEventTypesInvalid(ValidationFailed):
    code = "webhook_event_types_invalid"


def event_type(topic: str) -> str:
    """``domain.identity.tenant:Tenant.Frozen`` → ``Tenant.Frozen``: what filters match."""
    return topic.rpartition(":")[2]


def matches(patterns: list[str], topic: str) -> bool:
    """Whether an event of ``topic`` passes a webhook's event-type globs."""
    name = event_type(topic)
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def check_event_types(patterns: list[str]) -> list[str]:
    if not 1 <= len(patterns) <= MAX_EVENT_TYPES:
        raise WebhookEventTypesInvalid(
            f"give between 1 and {MAX_EVENT_TYPES} event type patterns", field="event_types"
        )
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise WebhookEventTypesInvalid(
                f"{pattern!r} is not a glob over event types like 'Instance.*' or '*'",
                field="event_types",
            )
    return list(dict.fromkeys(patterns))


def check_url(url: str) -> str:
    """The URL's shape only; where it points is checked by resolving it (gateways)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise WebhookUrlInvalid(f"{url!r} is not a URL", field="url") from None
    if len(url) > MAX_URL_LENGTH:
        raise WebhookUrlInvalid(f"a URL has at most {MAX_URL_LENGTH} characters", field="url")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise WebhookUrlInvalid("the URL must be http:// or https:// with a host", field="url")
    if parts.username is not None or parts.password is not None:
        # Credentials would be kept in plain events forever; sign requests instead.
        raise WebhookUrlInvalid("the URL must not carry credentials", field="url")
    if parts.fragment or port == 0:
        raise WebhookUrlInvalid("the URL must not have a fragment or port 0", field="url")
    return url


class Webhook(Aggregate):
    id_prefix = "whk"
    # The salt and key id sign nothing alone, but with a leaked platform key they would.
    secret_fields = secret(
        Created=("secret_salt", "key_id"), SecretRotated=("secret_salt", "key_id")
    )

    def __init__(
        self,
        tenant_id: str,
        url: str,
        event_types: list[str],
        description: str,
        secret_salt: str,
        key_id: str,
        paused: bool = False,
    ) -> None:
        self.tenant_id = tenant_id
        self.url = check_url(url)
        self.event_types = check_event_types(list(event_types))
        self.description = description
        self.secret_salt = secret_salt
        """Not secret: the secret is derived from the platform key and this salt."""
        self.key_id = key_id
        """Fingerprint of the platform key the secret was derived from."""
        self.status = PAUSED if paused else ACTIVE
        self.allow_private = False
        self.dead_letter_reason: str | None = None
        self.replays = 0

    pause_reason: str | None = None
    """Why the platform paused it (a target failing for hours); None when a person did."""

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "url": self.url,
            "event_types": self.event_types,
            "description": self.description,
            "status": self.status,
            "allow_private": self.allow_private,
            "dead_letter_reason": self.dead_letter_reason,
            "pause_reason": self.pause_reason,
        }

    def _live(self) -> None:
        if self.status == DELETED:
            raise NotFound(f"{self.id} does not exist", resource_id=self.id)

    def update(
        self, url: str | None, event_types: list[str] | None, description: str | None
    ) -> None:
        self._live()
        self._updated(
            None if url is None else check_url(url),
            None if event_types is None else check_event_types(list(event_types)),
            description,
        )

    @event("Updated")
    def _updated(
        self, url: str | None, event_types: list[str] | None, description: str | None
    ) -> None:
        if url is not None:
            self.url = url
        if event_types is not None:
            self.event_types = event_types
        if description is not None:
            self.description = description

    def pause(self) -> None:
        self._live()
        if self.status == PAUSED:
            raise InvalidState("the webhook is already paused", webhook_id=self.id)
        self._paused()

    @event("Paused")
    def _paused(self) -> None:
        self.status = PAUSED

    def resume(self) -> None:
        """Deliver again from where delivery stopped (a dead-lettered event is retried)."""
        self._live()
        if self.status == ACTIVE:
            raise InvalidState("the webhook is already active", webhook_id=self.id)
        self._resumed()

    @event("Resumed")
    def _resumed(self) -> None:
        self.status = ACTIVE
        self.dead_letter_reason = None
        self.pause_reason = None

    def pause_for_failures(
        self, position: int, failures: int, failing_since: datetime, error: str
    ) -> None:
        """The platform's pause of a target that has failed for too long; resume continues."""
        if self.status != ACTIVE:
            raise InvalidState("only an active webhook can be paused", webhook_id=self.id)
        self._paused_for_failures(position, failures, failing_since, error[:500])

    @event("PausedForFailures")
    def _paused_for_failures(
        self, position: int, failures: int, failing_since: datetime, error: str
    ) -> None:
        self.status = PAUSED
        self.pause_reason = (
            f"failing since {failing_since.isoformat()} ({failures} attempts) "
            f"at position {position}: {error}"
        )

    def dead_letter(self, position: int, failures: int, error: str) -> None:
        if self.status != ACTIVE:
            raise InvalidState("only an active webhook can be dead-lettered", webhook_id=self.id)
        self._dead_lettered(position, failures, error[:500])

    @event("DeadLettered")
    def _dead_lettered(self, position: int, failures: int, error: str) -> None:
        self.status = DEAD_LETTERED
        self.dead_letter_reason = f"{failures} failed attempts at position {position}: {error}"

    def delete(self) -> None:
        self._live()
        self._deleted()

    @event("Deleted")
    def _deleted(self) -> None:
        self.status = DELETED

    def allow_private_targets(self, allowed: bool) -> None:
        """A platform admin's decision: may this webhook target internal addresses?"""
        self._live()
        if allowed == self.allow_private:
            raise InvalidState(
                f"private targets are already {'allowed' if allowed else 'refused'}",
                webhook_id=self.id,
            )
        if allowed:
            self._private_targets_allowed()
        else:
            self._private_targets_refused()

    @event("PrivateTargetsAllowed")
    def _private_targets_allowed(self) -> None:
        self.allow_private = True

    @event("PrivateTargetsRefused")
    def _private_targets_refused(self) -> None:
        self.allow_private = False

    def rotate_secret(self, secret_salt: str, key_id: str) -> None:
        self._live()
        self._secret_rotated(secret_salt, key_id)

    @event("SecretRotated")
    def _secret_rotated(self, secret_salt: str, key_id: str) -> None:
        self.secret_salt = secret_salt
        self.key_id = key_id

    def replay(self, after: int) -> None:
        """Deliver again every matching event after position ``after``, in order."""
        self._live()
        if after < 0:
            raise ValidationFailed("a position is never negative", field="after")
        self._replay_requested(after)

    @event("ReplayRequested")
    def _replay_requested(self, after: int) -> None:
        self.replays += 1

    def redeliver(self, delivery_id: str, position: int) -> None:
        """Send one logged delivery's event again, once, under a new delivery id."""
        self._live()
        self._redelivery_requested(delivery_id, position)

    @event("RedeliveryRequested")
    def _redelivery_requested(self, delivery_id: str, position: int) -> None:
        pass
