"""One placement's inputs, resolved once so that per-host tests stay cheap."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import NamedTuple

from domain.compute.scheduler.request import PlacementRequest
from domain.compute.scheduler.view import ServerGroup
from domain.errors import NotFound


class Context(NamedTuple):
    request: PlacementRequest
    group: ServerGroup | None
    members_on: Mapping[str, int]
    """Host id to how many members of the request's server group it holds."""


def context_for(request: PlacementRequest, groups: Mapping[str, ServerGroup]) -> Context:
    if request.server_group_id is None:
        return Context(request, None, {})
    group = groups.get(request.server_group_id)
    if group is None:
        raise NotFound(
            f"server group {request.server_group_id} is not in the scheduler's view",
            server_group_id=request.server_group_id,
        )
    return Context(request, group, Counter(group.members.values()))
