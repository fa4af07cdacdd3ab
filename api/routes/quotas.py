"""Quotas: a tenant's usage against its limits, and the admin's overrides."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.listing import Accepted
from api.routing import Router
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain.errors import NotFound
from domain.quota.kinds import DEFAULT_LIMITS, GLOBAL_REGION, QUOTA_KINDS
from domain.quota.ledger import QuotaLedger, ledger_id
from domain.settings.global_config import GLOBAL_CONFIG_ID

router = Router()


class QuotaQuery(msgspec.Struct, kw_only=True):
    region: str = GLOBAL_REGION
    min_position: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None


class QuotaLine(msgspec.Struct, kw_only=True):
    kind: str
    used: int
    limit: int


class QuotaUsage(msgspec.Struct, kw_only=True):
    tenant_id: str
    region: str
    quotas: list[QuotaLine]


class SetQuotas(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    region: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] = GLOBAL_REGION
    limits: dict[str, Annotated[int, msgspec.Meta(ge=0)] | None]
    """Per kind: a limit, or null to fall back to the region's default."""


async def usage(call: Call, tenant_id: str, region: str) -> web.Response:
    """The usage and limits, with the ledger's version as the ETag the PUT's If-Match names."""
    document = await call.document(ledger_id(tenant_id), "qta", "quota:usage:read")
    view = document.view
    used = view["usage"].get(region, {})
    overrides = view["overrides"].get(region, {})
    defaults = await _region_defaults(call, region)
    lines = [
        QuotaLine(
            kind=kind,
            used=used.get(kind, 0),
            limit=overrides.get(kind, defaults.get(kind, DEFAULT_LIMITS[kind])),
        )
        for kind in QUOTA_KINDS
    ]
    return json_response(
        QuotaUsage(tenant_id=tenant_id, region=region, quotas=lines),
        headers={"ETag": f'"{document.version}"'},
    )


async def _region_defaults(call: Call, region: str) -> dict[str, int]:
    """The region's own defaults, as ``QuotaLedger.limit`` applies them when allocating."""
    pool = call.platform.store.pool
    if region == GLOBAL_REGION:
        # The region-less scope's defaults live in the global configuration.
        config = await call.platform.documents.get(pool, GLOBAL_CONFIG_ID)
        return dict(config.view.get("quota_defaults") or {}) if config is not None else {}
    found = await call.platform.documents.get(pool, region)
    if found is None or found.kind != "rgn":
        return {}
    return dict(found.view.get("quota_defaults") or {})


@router.route(
    "GET",
    "/v1/quotas",
    summary="The caller's tenant's usage and limits in a region",
    action="quota:usage:read",
    query=QuotaQuery,
    response=QuotaUsage,
    tags=("quotas",),
)
async def my_quotas(call: Call) -> web.Response:
    if call.me.tenant_id is None:
        raise NotFound("platform staff have no quota; see /v1/admin/tenants/{id}/quotas")
    await call.read_your_writes()
    return await usage(call, call.me.tenant_id, call.query.region)


@router.route(
    "GET",
    "/v1/admin/tenants/{id}/quotas",
    summary="A tenant's usage and limits",
    action="admin:quota:read",
    query=QuotaQuery,
    response=QuotaUsage,
    kind="tnt",
    tags=("quotas",),
)
async def tenant_quotas(call: Call) -> web.Response:
    await call.read_your_writes()
    return await usage(call, call.request.match_info["id"], call.query.region)


@router.route(
    "PUT",
    "/v1/admin/tenants/{id}/quotas",
    summary="Override a tenant's limits in a region",
    action="admin:quota:update",
    body=SetQuotas,
    response=Accepted,
    status=202,
    kind="tnt",
    tags=("quotas",),
)
async def set_quotas(call: Call) -> web.Response:
    body: SetQuotas = call.body
    tenant_id = call.request.match_info["id"]

    async def decide(unit: UnitOfWork) -> Decided:
        ledger = await unit.get(ledger_id(tenant_id), QuotaLedger, checked=True)
        ledger.set_limits(body.region, body.limits)
        return Decided(resource_id=ledger.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))
