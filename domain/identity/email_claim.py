"""An e-mail address claimed by one user: how sign-in names stay unique.

The claim's id is derived from the address, so two concurrent sign-ups with one
address both try to create the same aggregate and the event store lets only one win.
"""

from __future__ import annotations

import hashlib

from eventsourcing.domain import event

from domain.aggregate import Aggregate

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"


def claim_id(email: str) -> str:
    digest = int.from_bytes(hashlib.sha256(email.strip().lower().encode()).digest()[:17])
    body = "".join(_ALPHABET[(digest >> (5 * i)) & 31] for i in range(26))
    return f"eml-{body}"


class EmailClaim(Aggregate):
    id_prefix = "eml"

    def __init__(self, user_id: str) -> None:
        self.user_id: str | None = user_id

    @classmethod
    def claim(cls, email: str, user_id: str) -> EmailClaim:
        return cls._create(cls.Created, id=claim_id(email), user_id=user_id)

    @event("Released")
    def release(self) -> None:
        self.user_id = None

    @event("Reclaimed")
    def reclaim(self, user_id: str) -> None:
        self.user_id = user_id
