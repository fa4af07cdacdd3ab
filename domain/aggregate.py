"""The base every SCloudStack aggregate is built on: string ids with a type prefix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    CanSnapshotAggregate,
    DomainEvent,
)

from domain import clock
from domain.ids import new_id
from domain.secrets import SecretFields


@dataclass(frozen=True)
class Event(CanMutateAggregate[str], DomainEvent):
    """A fact about one aggregate; its timestamp comes from the clock in force."""

    originator_id: str  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if not isinstance(self.originator_id, str):
            raise TypeError(f"{type(self).__name__} needs a str originator_id")

    @staticmethod
    def create_timestamp() -> datetime:
        return clock.now()


@dataclass(frozen=True)
class Created(Event, CanInitAggregate[str]):
    """The first event of every aggregate."""

    originator_topic: str


@dataclass(frozen=True)
class Snapshot(CanSnapshotAggregate[str], DomainEvent):
    """An aggregate's whole state at one version, to shorten long streams."""

    originator_id: str  # type: ignore[assignment]
    topic: str
    state: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.originator_id, str):
            raise TypeError("Snapshot needs a str originator_id")

    @staticmethod
    def create_timestamp() -> datetime:
        return clock.now()


class Aggregate(BaseAggregate[str]):
    """Subclasses set ``id_prefix`` and declare ``@event`` methods, one intent each."""

    id_prefix: ClassVar[str] = "agg"
    secret_fields: ClassVar[SecretFields] = {}
    """Per event name, the fields no export may show (see ``domain/secrets.py``)."""

    @classmethod
    def create_id(cls, *_: Any, **__: Any) -> str:
        return new_id(cls.id_prefix)

    Event = Event
    Created = Created
    Snapshot = Snapshot
