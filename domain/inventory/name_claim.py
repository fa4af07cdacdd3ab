"""A name claimed within a scope: how inventory names stay unique where they must.

The claim's id is derived from the scope and the name, so two concurrent creates with one
name both try to create the same aggregate and the event store lets only one win.
"""

from __future__ import annotations

import hashlib
import re

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import Conflict, ValidationFailed

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
NAME_PATTERN = r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$"
"""Lower-case letters, digits, ``.``, ``_`` and ``-``; what an operator types in a CLI."""
_NAME = re.compile(NAME_PATTERN)


class NameInUse(Conflict):
    code = "name_in_use"


def check_name(name: str, field: str = "name") -> str:
    if not _NAME.fullmatch(name):
        raise ValidationFailed(
            f"{name!r} is not a name: 1-63 lower-case letters, digits, '.', '_' or '-'",
            field=field,
        )
    return name


def claim_id(scope: str, name: str) -> str:
    digest = hashlib.sha256(f"{scope}\x00{name.strip().lower()}".encode()).digest()
    value = int.from_bytes(digest[:17])
    return "nam-" + "".join(_ALPHABET[(value >> (5 * i)) & 31] for i in range(26))


class NameClaim(Aggregate):
    id_prefix = "nam"

    def __init__(self, scope: str, name: str, owner_id: str) -> None:
        self.scope = scope
        self.name = name
        self.owner_id: str | None = owner_id

    @classmethod
    def claim(cls, scope: str, name: str, owner_id: str) -> NameClaim:
        return cls._create(
            cls.Created, id=claim_id(scope, name), scope=scope, name=name, owner_id=owner_id
        )

    def take(self, owner_id: str) -> None:
        """Give this released name to ``owner_id``; taken by another, it is a conflict."""
        if self.owner_id == owner_id:
            return
        if self.owner_id is not None:
            raise NameInUse(f"{self.name!r} is already in use", field="name")
        self._reclaimed(owner_id)

    @event("Reclaimed")
    def _reclaimed(self, owner_id: str) -> None:
        self.owner_id = owner_id

    @event("Released")
    def release(self) -> None:
        self.owner_id = None
