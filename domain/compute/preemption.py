"""A preemption: the platform's record of which regular instance took whose room.

Each tenant sees only its own side: the preempting instance's placement decision counts
its victims, and each victim's ``Preempted`` event names this record, not the other
tenant's instance. This record, kept under no tenant, names both for operators.
"""

from __future__ import annotations

from typing import Any

from domain.aggregate import Aggregate


class Preemption(Aggregate):
    id_prefix = "pmt"

    def __init__(
        self,
        instance_id: str,
        tenant_id: str,
        host_id: str,
        victims: list[dict[str, str]],
        plan: dict[str, Any],
        reason: str,
    ) -> None:
        self.instance_id = instance_id
        """The regular instance the room is for, and its tenant."""
        self.tenant_id = tenant_id
        self.host_id = host_id
        self.victims = victims
        """Each victim's instance id and tenant id."""
        self.plan = plan
        """The scheduler's plan as it chose it: host, victims, what they free."""
        self.reason = reason
