"""A server group: instances placed together (affinity) or apart (anti-affinity).

The scheduler reads the group's members to choose hosts; the group itself is the authority
that makes the choice hold: every member joins with the host it got, re-checked against the
members it already has, in the same append as the host claim. Two creates racing into one
anti-affinity group both read its version; the second to append fails and places again.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.compute.scheduler import GroupPolicy
from domain.compute.scheduler import ServerGroup as GroupView
from domain.errors import Conflict, InvalidState, ValidationFailed

MAX_MEMBERS = 1000
HARD = frozenset({GroupPolicy.AFFINITY, GroupPolicy.ANTI_AFFINITY})


class GroupRuleBroken(Conflict):
    """The host the scheduler chose breaks the group's policy: its view was stale."""

    code = "server_group_policy"


class ServerGroup(Aggregate):
    id_prefix = "sg"

    def __init__(
        self,
        tenant_id: str,
        project_id: str | None,
        name: str,
        policy: str,
        max_per_host: int | None,
    ) -> None:
        self.tenant_id = tenant_id
        self.project_id = project_id
        self.name = name
        self.policy = policy
        self.max_per_host = max_per_host
        self.members: dict[str, str] = {}
        """Instance id → the host it is placed on."""
        self.deleted = False

    @classmethod
    def form(
        cls,
        tenant_id: str,
        project_id: str | None,
        name: str,
        policy: str,
        max_per_host: int | None = None,
    ) -> ServerGroup:
        try:
            checked = GroupPolicy(policy)
        except ValueError:
            raise ValidationFailed(f"{policy!r} is not a group policy", field="policy") from None
        if max_per_host is not None and max_per_host < 1:
            raise ValidationFailed("max_per_host is at least 1", field="max_per_host")
        return cls(tenant_id, project_id, name, checked.value, max_per_host)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "project_id": self.project_id,
            "name": self.name,
            "policy": self.policy,
            "max_per_host": self.max_per_host,
            "members": dict(sorted(self.members.items())),
            "status": "deleted" if self.deleted else "active",
        }

    def scheduler_view(self) -> GroupView:
        return GroupView(
            id=self.id,
            policy=GroupPolicy(self.policy),
            max_per_host=self.max_per_host,
            members=dict(self.members),
        )

    def join(self, instance_id: str, host_id: str) -> None:
        """``instance_id`` is placed on ``host_id``: refused if that breaks the policy."""
        if self.deleted:
            raise InvalidState(f"server group {self.name} is deleted", server_group_id=self.id)
        if self.members.get(instance_id) == host_id:
            return
        self._check(instance_id, host_id)
        self._joined(instance_id, host_id)

    def _check(self, instance_id: str, host_id: str) -> None:
        others = {i: h for i, h in self.members.items() if i != instance_id}
        if len(others) >= MAX_MEMBERS:
            raise GroupRuleBroken(f"server group {self.name} has {MAX_MEMBERS} members")
        on_host = Counter(others.values())[host_id]
        policy = GroupPolicy(self.policy)
        most = self.max_per_host or (1 if policy == GroupPolicy.ANTI_AFFINITY else None)
        if most is not None and on_host >= most:
            raise GroupRuleBroken(
                f"host {host_id} already holds {on_host} members of {self.name} ({policy})",
                server_group_id=self.id,
            )
        if policy == GroupPolicy.AFFINITY and others and host_id not in set(others.values()):
            raise GroupRuleBroken(
                f"the members of {self.name} run elsewhere than {host_id} (affinity)",
                server_group_id=self.id,
            )

    def rejoin(self, instance_id: str, host_id: str) -> None:
        """A move that did not happen: the member is back on the host it never left.

        Not checked against the policy: that host held it all along.
        """
        if self.members.get(instance_id) not in (None, host_id) and not self.deleted:
            self._joined(instance_id, host_id)

    @event("MemberJoined")
    def _joined(self, instance_id: str, host_id: str) -> None:
        self.members[instance_id] = host_id

    def leave(self, instance_id: str) -> None:
        if instance_id in self.members:
            self._left(instance_id)

    @event("MemberLeft")
    def _left(self, instance_id: str) -> None:
        del self.members[instance_id]

    def delete(self) -> None:
        if self.deleted:
            raise InvalidState(f"server group {self.name} is deleted", server_group_id=self.id)
        if self.members:
            raise InvalidState(
                f"server group {self.name} still has {len(self.members)} members",
                server_group_id=self.id,
            )
        self._deleted()

    @event("Deleted")
    def _deleted(self) -> None:
        self.deleted = True
