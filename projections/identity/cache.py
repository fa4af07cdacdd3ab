"""Who may sign in and with what: users, keys, tenants and roles, folded in memory.

Every API process keeps this current by following the store, so authenticating a
request reads only memory. A command's own process applies its events before
answering, so a key or user is usable the moment its creation is acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import Mapper, StoredEvent

from domain.identity.apikey import ApiKey
from domain.identity.role import Role
from domain.identity.tenant import Tenant
from domain.identity.user import User
from domain.settings.global_config import GLOBAL_CONFIG_ID, GlobalConfig
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.transcoder import MsgspecTranscoder
from gateways.waiting import wait_any

_KINDS = ("usr-", "key-", "tnt-", "role-", "cfg-")
"""The global config too: signing in reads its login policy from memory."""


class IdentityCache:
    def __init__(self) -> None:
        self._mapper: Mapper[str] = Mapper(transcoder=MsgspecTranscoder())
        self.aggregates: dict[str, BaseAggregate[str]] = {}
        self.user_by_email: dict[str, str] = {}
        self.position = 0
        self._catching_up = asyncio.Lock()

    def user(self, user_id: str) -> User | None:
        found = self.aggregates.get(user_id)
        return found if isinstance(found, User) else None

    def key(self, key_id: str) -> ApiKey | None:
        found = self.aggregates.get(key_id)
        return found if isinstance(found, ApiKey) else None

    def tenant(self, tenant_id: str) -> Tenant | None:
        found = self.aggregates.get(tenant_id)
        return found if isinstance(found, Tenant) else None

    def role(self, role_id: str) -> Role | None:
        found = self.aggregates.get(role_id)
        return found if isinstance(found, Role) else None

    def config(self) -> GlobalConfig | None:
        found = self.aggregates.get(GLOBAL_CONFIG_ID)
        return found if isinstance(found, GlobalConfig) else None

    def apply(self, events: Sequence[RecordedEvent]) -> None:
        for event in events:
            if event.position <= self.position:
                continue  # already applied (by the command that wrote it)
            if event.originator_id.startswith(_KINDS):
                self._apply_one(event)
        if events:
            self.position = max(self.position, events[-1].position)

    def _apply_one(self, event: RecordedEvent) -> None:
        domain_event = self._mapper.to_domain_event(
            StoredEvent(event.originator_id, event.originator_version, event.topic, event.state)
        )
        current = self.aggregates.get(event.originator_id)
        if current is not None and current.version >= event.originator_version:
            return
        aggregate = domain_event.mutate(current)  # type: ignore[attr-defined]
        self.aggregates[event.originator_id] = aggregate
        if isinstance(aggregate, User):
            self.user_by_email[aggregate.email.lower()] = aggregate.id

    async def catch_up(self, store: PostgresEventStore, until: int = 2**62) -> None:
        """Apply everything up to ``until`` now (a command's own writes, before it answers)."""
        async with self._catching_up:
            while self.position < until and (
                batch := await store.read_all(after=self.position, limit=10_000, until=until)
            ):
                self.apply(batch)

    async def follow(self, store: PostgresEventStore, stop: asyncio.Event) -> None:
        """Stay current until ``stop`` is set."""
        async with store.appended() as appended:
            while not stop.is_set():
                appended.clear()
                await self.catch_up(store)
                await wait_any(appended, stop, timeout=1.0)
