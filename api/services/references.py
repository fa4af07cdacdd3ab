"""The resources a command's body names, each checked to be one the caller may use.

A body's reference must name the caller's own resource (in its projects, for a sub-account
limited to some), one shared with its tenant, or a public one (a region, a flavor, a public
image). Whatever the reason it is not (it names nothing, another tenant's resource, one
outside the caller's projects), the answer is the same 422 naming the body's field: a body
tells no more about other tenants' ids than a path does.
"""

from __future__ import annotations

import msgspec

from api.services.unit_of_work import UnitOfWork
from domain.compute.image import Image
from domain.compute.instance import Instance
from domain.compute.server_group import ServerGroup
from domain.errors import ValidationFailed
from domain.identity.project import Project
from domain.identity.tenant import Tenant
from domain.inventory.flavor import Flavor
from domain.inventory.region import Region


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    """Whose references these are: a tenant, and the projects a sub-account is limited to."""

    tenant_id: str
    projects: tuple[str, ...] | None = None
    """None: every project of the tenant."""

    def reaches(self, project_id: str | None) -> bool:
        return self.projects is None or project_id in self.projects


def refused(field: str, value: str, what: str) -> ValidationFailed:
    return ValidationFailed(f"{value} is not {what} you can use", field=field)


async def project(
    unit: UnitOfWork, scope: Scope, project_id: str | None, field: str = "project_id"
) -> str | None:
    """The project a new resource goes into; a limited sub-account must name one of its own."""
    if project_id is None:
        if scope.projects is not None:
            raise ValidationFailed(
                f"{field} is required: a sub-account limited to projects creates only in them",
                field=field,
            )
        return None
    found = await unit.find(project_id, Project)
    if found is None or found.tenant_id != scope.tenant_id or not scope.reaches(project_id):
        raise refused(field, project_id, "a project")
    return project_id


async def server_group(
    unit: UnitOfWork, scope: Scope, group_id: str, field: str = "server_group_id"
) -> ServerGroup:
    group = await unit.find(group_id, ServerGroup)
    if (
        group is None
        or group.tenant_id != scope.tenant_id
        or group.deleted
        or not scope.reaches(group.project_id)
    ):
        raise refused(field, group_id, "a server group")
    return group


async def instance(
    unit: UnitOfWork, scope: Scope, instance_id: str, field: str = "instance_id"
) -> Instance:
    found = await unit.find(instance_id, Instance)
    if found is None or found.tenant_id != scope.tenant_id or not scope.reaches(found.project_id):
        raise refused(field, instance_id, "an instance")
    return found


async def region(unit: UnitOfWork, region_id: str, field: str = "region_id") -> Region:
    found = await unit.find(region_id, Region)
    if found is None:
        raise refused(field, region_id, "a region")
    return found


async def flavor(unit: UnitOfWork, flavor_id: str, field: str = "flavor_id") -> Flavor:
    """An orderable flavor (flavors are the platform's, offered to every tenant)."""
    found = await unit.find(flavor_id, Flavor)
    if found is None or not found.enabled:
        raise refused(field, flavor_id, "an orderable flavor")
    return found


async def image(
    unit: UnitOfWork, tenant_id: str, image_id: str, region_id: str, field: str = "image_id"
) -> Image:
    """An available image the tenant owns, is shared or is public, in ``region_id``."""
    found = await unit.find(image_id, Image)
    if found is None or not found.usable_by(tenant_id) or found.region_id != region_id:
        raise refused(field, image_id, f"an image in {region_id}")
    return found


async def tenant(unit: UnitOfWork, tenant_id: str, field: str = "tenant_id") -> Tenant:
    found = await unit.find(tenant_id, Tenant)
    if found is None:
        raise refused(field, tenant_id, "a tenant")
    return found
