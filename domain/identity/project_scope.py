"""What a sub-account limited to projects may reach: its projects and what lives in them.

Resources of the kinds below belong to one project or to none. A limited sub-account
reaches only those of its projects: one in no project is outside them, as one in another
project is (its lists always hid them; a read or an action by id must too). A project's
own scope is itself. Other kinds (users, roles, images, webhooks, ...) are the tenant's
as a whole and are not narrowed by projects.
"""

from __future__ import annotations

PROJECT = "prj"
PROJECT_KINDS = frozenset({"i", "sg", "sub"})
"""Id prefixes of the resources that carry a ``project_id``: instances, server groups,
subscriptions. A new kind with a project (a disk, a VPC) is added here."""

OUTSIDE = "outside the sub-account's projects"


def scope_of(kind: str, resource_id: str, project_id: str | None) -> str | None:
    """The project a resource counts as in; None when its kind is not narrowed by projects
    or it is in none (tell the two apart with ``narrowed``)."""
    return resource_id if kind == PROJECT else project_id


def narrowed(kind: str) -> bool:
    """Whether a sub-account's projects limit what it reaches of ``kind``."""
    return kind == PROJECT or kind in PROJECT_KINDS


def outside_projects(
    projects: tuple[str, ...] | None, kind: str, resource_id: str, project_id: str | None
) -> str | None:
    """Why a resource is out of a limited sub-account's reach, or None when it is not."""
    if projects is None or not narrowed(kind):
        return None
    if scope_of(kind, resource_id, project_id) in projects:
        return None
    return OUTSIDE
