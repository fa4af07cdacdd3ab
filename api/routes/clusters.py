"""Clusters: groups of hosts of one CPU architecture and kind, within a region."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routes.regions import Name, RegionId, Status
from api.routing import Router
from api.services import inventory
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain.inventory.cluster import MAX_OVERCOMMIT, Cluster

router = Router()

Architecture = Literal["x86_64", "aarch64"]
ClusterKind = Literal["compute", "storage"]
Overcommit = Annotated[float, msgspec.Meta(ge=1.0, le=MAX_OVERCOMMIT)]


class CreateCluster(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    region_id: RegionId
    name: Name
    architecture: Architecture
    kind: ClusterKind
    cpu_overcommit: Overcommit = 4.0
    """vCPUs sold per physical CPU thread."""
    memory_overcommit: Overcommit = 1.0
    """Memory sold per byte installed."""
    enabled: bool = True


class UpdateCluster(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name | None = None
    cpu_overcommit: Overcommit | None = None
    memory_overcommit: Overcommit | None = None


class ClusterView(msgspec.Struct, kw_only=True):
    id: str
    region_id: str
    name: str
    architecture: Architecture
    kind: ClusterKind
    cpu_overcommit: float
    memory_overcommit: float
    status: Status


class ClusterPage(msgspec.Struct, kw_only=True):
    items: list[ClusterView]
    next_page_token: str | None


class ClusterQuery(ListQuery, kw_only=True):
    region_id: RegionId | None = None
    status: Status | None = None
    architecture: Architecture | None = None
    kind: ClusterKind | None = None
    name: Name | None = None


@router.route(
    "POST",
    "/v1/admin/clusters",
    summary="Form a cluster in an enabled region",
    action="admin:cluster:create",
    body=CreateCluster,
    response=Accepted,
    status=202,
    tags=("clusters",),
)
async def create_cluster(call: Call) -> web.Response:
    body: CreateCluster = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.form_cluster(
            unit,
            body.region_id,
            body.name,
            body.architecture,
            body.kind,
            body.cpu_overcommit,
            body.memory_overcommit,
            body.enabled,
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "GET",
    "/v1/admin/clusters",
    summary="List clusters",
    action="admin:cluster:read",
    query=ClusterQuery,
    response=ClusterPage,
    tags=("clusters",),
)
async def list_clusters(call: Call) -> web.Response:
    return await list_kind(
        call,
        "cls",
        call.query,
        tenant_id=None,
        filters=("region_id", "status", "architecture", "kind", "name"),
    )


@router.route(
    "GET",
    "/v1/admin/clusters/{id}",
    summary="One cluster",
    action="admin:cluster:read",
    response=ClusterView,
    kind="cls",
    tags=("clusters",),
)
async def get_cluster(call: Call) -> web.Response:
    return await call.one(
        await call.document(call.request.match_info["id"], "cls", "admin:cluster:read")
    )


@router.route(
    "PATCH",
    "/v1/admin/clusters/{id}",
    summary="Rename a cluster or change its overcommit ratios",
    action="admin:cluster:update",
    body=UpdateCluster,
    response=Accepted,
    status=202,
    kind="cls",
    tags=("clusters",),
)
async def update_cluster(call: Call) -> web.Response:
    body: UpdateCluster = call.body
    cluster_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.update_cluster(
            unit, cluster_id, body.name, body.cpu_overcommit, body.memory_overcommit
        )

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/clusters/{id}/actions/enable",
    summary="Enable a cluster",
    action="admin:cluster:update",
    response=Accepted,
    status=202,
    kind="cls",
    tags=("clusters",),
)
async def enable_cluster(call: Call) -> web.Response:
    cluster_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, cluster_id, Cluster, enabled=True)

    return call.accepted(await call.execute(decide, tenant_id=None))


@router.route(
    "POST",
    "/v1/admin/clusters/{id}/actions/disable",
    summary="Disable a cluster: nothing new is placed on its hosts",
    action="admin:cluster:update",
    response=Accepted,
    status=202,
    kind="cls",
    tags=("clusters",),
)
async def disable_cluster(call: Call) -> web.Response:
    cluster_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.switch(unit, cluster_id, Cluster, enabled=False)

    return call.accepted(await call.execute(decide, tenant_id=None))
