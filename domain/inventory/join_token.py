"""A join token: an admin's single-use, expiring permission for one host to join a cluster.

Only the SHA-256 of its secret is kept (the secret is shown once, when it is issued). A
host daemon presents the secret over NATS; the platform checks it here and, in the same
append, marks the token used and registers (or binds) the host.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import DomainError, InvalidState, ValidationFailed
from domain.inventory.cluster import Cluster
from domain.inventory.host import check_hostname
from domain.secrets import secret

MIN_TTL_SECONDS = 60
MAX_TTL_SECONDS = 30 * 24 * 3600
ACTIVE, USED, REVOKED = "active", "used", "revoked"


class JoinRefused(DomainError):
    """A host's join token is not good (any more): the host is not registered."""

    code = "join_token_refused"
    status = 403


class JoinTokenInvalid(JoinRefused):
    code = "join_token_invalid"


class JoinTokenExpired(JoinRefused):
    code = "join_token_expired"


class JoinTokenRevoked(JoinRefused):
    code = "join_token_revoked"


class JoinTokenUsed(JoinRefused):
    code = "join_token_used"


class JoinTokenHostname(JoinRefused):
    code = "join_token_hostname_mismatch"


class JoinToken(Aggregate):
    id_prefix = "jtk"
    secret_fields = secret(Created=("secret_hash",))

    def __init__(
        self,
        cluster_id: str,
        region_id: str,
        secret_hash: str,
        expires_at: datetime,
        hostname: str | None,
    ) -> None:
        self.cluster_id = cluster_id
        self.region_id = region_id
        self.secret_hash = secret_hash
        """SHA-256 of the secret: the secret itself is shown once and never stored."""
        self.expires_at = expires_at
        self.hostname = hostname
        """The only hostname that may join with it; None: any."""
        self.status = ACTIVE
        self.host_id: str | None = None
        """The host that joined with it."""
        self.used_at: datetime | None = None

    @classmethod
    def issue(
        cls, cluster: Cluster, secret_hash: str, expires_at: datetime, hostname: str | None
    ) -> JoinToken:
        if expires_at.tzinfo is None:
            raise ValidationFailed("expires_at needs a timezone", field="expires_at")
        return cls(
            cluster_id=cluster.id,
            region_id=cluster.region_id,
            secret_hash=secret_hash,
            expires_at=expires_at,
            hostname=None if hostname is None else check_hostname(hostname),
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "cluster_id": self.cluster_id,
            "region_id": self.region_id,
            "hostname": self.hostname,
            "expires_at": self.expires_at.isoformat(),
            "status": self.status,
            "host_id": self.host_id,
            "used_at": self.used_at.isoformat() if self.used_at else None,
        }

    def refusal(self, secret_hash: str, hostname: str, now: datetime) -> JoinRefused | None:
        """Why a host presenting this secret (hash) and hostname may not join; None: it may."""
        if not hmac.compare_digest(self.secret_hash, secret_hash):
            return JoinTokenInvalid("the join token is not valid")
        if self.status == USED:
            return JoinTokenUsed(
                f"the join token {self.id} was already used (by {self.host_id})",
                token_id=self.id,
            )
        if self.status == REVOKED:
            return JoinTokenRevoked(f"the join token {self.id} was revoked", token_id=self.id)
        if self.expires_at <= now:
            return JoinTokenExpired(
                f"the join token {self.id} expired at {self.expires_at.isoformat()}",
                token_id=self.id,
            )
        if self.hostname is not None and hostname != self.hostname:
            return JoinTokenHostname(
                f"the join token {self.id} is for host {self.hostname}, not {hostname}",
                token_id=self.id,
            )
        return None

    def use(self, host_id: str, hostname: str, now: datetime) -> None:
        """Spend the token on ``host_id`` (checked first with ``refusal``)."""
        if self.status != ACTIVE:
            raise InvalidState(f"the join token is {self.status}", token_id=self.id)
        self._used(host_id, hostname, now)

    @event("Used")
    def _used(self, host_id: str, hostname: str, at: datetime) -> None:
        self.status = USED
        self.host_id = host_id
        self.used_at = at

    def revoke(self) -> None:
        if self.status != ACTIVE:
            raise InvalidState(f"the join token is already {self.status}", token_id=self.id)
        self._revoked()

    @event("Revoked")
    def _revoked(self) -> None:
        self.status = REVOKED
