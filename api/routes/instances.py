"""Instances: create (placed and claimed at once), read, and drive their power."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import compute
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain.compute.instance import Instance
from domain.errors import ValidationFailed
from domain.ids import new_id

router = Router()

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9]{0,11}-[0-9a-hjkmnp-tv-z]{26}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class CreateInstances(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    region_id: Id
    flavor_id: Id
    image_id: Id
    disk_gb: Annotated[int, msgspec.Meta(ge=1, le=65536)] | None = None
    count: Annotated[int, msgspec.Meta(ge=1, le=compute.MAX_BATCH)] = 1
    preemptible: bool = False
    project_id: Id | None = None
    server_group_id: Id | None = None
    """Place into this server group, under its policy."""


class CreatedInstances(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str | None
    position: int
    instance_ids: list[str]


class InstanceView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    project_id: str | None
    name: str
    region_id: str
    flavor_id: str
    image_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    preemptible: bool
    server_group_id: str | None
    status: str
    host_id: str | None
    deadline: str | None
    error: str | None


class InstancePage(msgspec.Struct, kw_only=True):
    items: list[InstanceView]
    next_page_token: str | None


class InstanceQuery(ListQuery, kw_only=True):
    status: str | None = None
    name: str | None = None
    region_id: str | None = None


class Reboot(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    hard: bool = False


class Resize(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    flavor_id: Id
    """The new flavor; the instance must be stopped (it runs at the new size from its next
    start) and its disk must fit the flavor's range."""


def _tenant(call: Call) -> str:
    if call.me.tenant_id is None:
        raise ValidationFailed("instances belong to a tenant; staff act through /v1/admin")
    return call.me.tenant_id


@router.route(
    "POST",
    "/v1/instances",
    summary="Create instances from an image and a flavor",
    action="compute:instance:create",
    body=CreateInstances,
    response=CreatedInstances,
    status=202,
    tags=("instances",),
)
async def create_instances(call: Call) -> web.Response:
    body: CreateInstances = call.body
    tenant_id = _tenant(call)
    if body.project_id is not None and call.check(
        "compute:instance:create", tenant_id=tenant_id, project_id=body.project_id
    ):
        raise ValidationFailed("that project is outside what you may use", field="project_id")
    platform = call.platform
    await platform.host_health.start()
    hosts = await platform.documents.ids_of_kind(platform.store.pool, "hst")
    health = {host_id: compute.Health(*platform.host_health.health(host_id)) for host_id in hosts}

    async def decide(unit: UnitOfWork) -> Decided:
        return await compute.create_instances(
            unit,
            tenant_id=tenant_id,
            project_id=body.project_id,
            name=body.name,
            flavor_id=body.flavor_id,
            image_id=body.image_id,
            region_id=body.region_id,
            disk_gb=body.disk_gb,
            count=body.count,
            preemptible=body.preemptible,
            host_ids=hosts,
            health=health,
            server_group_id=body.server_group_id,
        )

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "GET",
    "/v1/instances",
    summary="List instances",
    action="compute:instance:read",
    query=InstanceQuery,
    response=InstancePage,
    tags=("instances",),
)
async def list_instances(call: Call) -> web.Response:
    return await list_kind(
        call,
        "i",
        call.query,
        tenant_id=_tenant(call),
        projects=call.me.projects,
        filters=("status", "name", "region_id"),
    )


@router.route(
    "GET",
    "/v1/instances/{id}",
    summary="One instance",
    action="compute:instance:read",
    response=InstanceView,
    kind="i",
    tags=("instances",),
)
async def get_instance(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "i", "compute:instance:read")
    )


Step = Callable[[UnitOfWork, Instance], Awaitable[None]]


async def _act(call: Call, step: Step) -> web.Response:
    tenant_id = _tenant(call)
    instance_id = call.request.match_info["id"]
    document = await call.document(instance_id, "i", call.endpoint.action or "")
    del document  # existence and tenant are checked; the aggregate decides the rest

    options = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        instance = await compute.instance_of(unit, instance_id, tenant_id)
        if isinstance(options, Reboot):
            await _reboot(unit, instance, options.hard)
        elif isinstance(options, Resize):
            await compute.resize_instance(unit, instance, options.flavor_id)
        else:
            await step(unit, instance)
        return Decided(resource_id=instance.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


def _action(verb: str, summary: str, step: Step, body: type[msgspec.Struct] | None = None) -> None:
    # Registered before renaming: the route table keeps the function object itself.
    @router.route(
        "POST",
        f"/v1/instances/{{id}}/actions/{verb}",
        summary=summary,
        action=f"compute:instance:{verb}",
        body=body,
        response=Accepted,
        status=202,
        kind="i",
        tags=("instances",),
    )
    async def handler(call: Call) -> web.Response:
        return await _act(call, step)

    handler.__name__ = handler.__qualname__ = f"{verb}_instance"


async def _start(unit: UnitOfWork, instance: Instance) -> None:
    instance.start(new_id("stp"))


async def _stop(unit: UnitOfWork, instance: Instance) -> None:
    instance.stop(new_id("stp"))


async def _reboot(unit: UnitOfWork, instance: Instance, hard: bool = False) -> None:
    instance.reboot(new_id("stp"), hard=hard)


async def _delete(unit: UnitOfWork, instance: Instance) -> None:
    instance.delete(new_id("stp"))


async def _restore(unit: UnitOfWork, instance: Instance) -> None:
    instance.restore()


async def _purge(unit: UnitOfWork, instance: Instance) -> None:
    instance.purge()
    await compute.release_host(unit, instance, "purged")
    await compute.leave_group(unit, instance)
    await compute.release_quota(unit, instance)


_action("start", "Start a stopped instance", _start)
_action("stop", "Stop an instance (ACPI, then power off after a grace period)", _stop)
_action("reboot", "Reboot an instance", _reboot, Reboot)
_action("delete", "Delete an instance to the recycle bin", _delete)
_action("restore", "Restore an instance from the recycle bin", _restore)
_action("purge", "Delete an instance for good, releasing its quota", _purge)


async def _not_without_body(unit: UnitOfWork, instance: Instance) -> None:
    raise AssertionError("resize always has its body")  # pragma: no cover


_action("resize", "Resize a stopped instance to another flavor (cold)", _not_without_body, Resize)
