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
from domain.errors import NotFound, ValidationFailed
from domain.inventory.region import Region
from domain.quota.kinds import DEFAULT_LIMITS, GLOBAL_REGION, kinds_in
from domain.quota.ledger import QuotaLedger, ledger_id
from domain.settings.global_config import GLOBAL_CONFIG_ID
from projections.resources.queries import Document

router = Router()


RegionId = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]


class QuotaQuery(msgspec.Struct, kw_only=True):
    region: RegionId | None = None
    """A region's id, or ``*`` for the region-less scope; every scope when not given."""
    min_position: Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)] | None = None


class QuotaLine(msgspec.Struct, kw_only=True):
    region: str
    """The region the kind is counted in, or ``*`` for projects, sub-accounts and keys."""
    kind: str
    used: int
    limit: int


class QuotaUsage(msgspec.Struct, kw_only=True):
    tenant_id: str
    region: str | None
    """The region asked for; null when the answer lists every region and the ``*`` scope."""
    quotas: list[QuotaLine]


class SetQuotas(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    region: RegionId = GLOBAL_REGION
    limits: dict[str, Annotated[int, msgspec.Meta(ge=0)] | None]
    """Per kind: a limit, or null to fall back to the region's default."""


async def usage(call: Call, tenant_id: str, region: str | None) -> web.Response:
    """The usage and limits, with the ledger's version as the ETag the PUT's If-Match names."""
    document = await call.document(ledger_id(tenant_id), "qta", "quota:usage:read")
    view = document.view
    scopes = await _scopes(call, region)
    lines: list[QuotaLine] = []
    for scope, defaults in scopes.items():
        used = view["usage"].get(scope, {})
        overrides = view["overrides"].get(scope, {})
        lines.extend(
            QuotaLine(
                region=scope,
                kind=kind,
                used=used.get(kind, 0),
                limit=overrides.get(kind, defaults.get(kind, DEFAULT_LIMITS[kind])),
            )
            for kind in kinds_in(scope)
        )
    return json_response(
        QuotaUsage(tenant_id=tenant_id, region=region, quotas=lines),
        headers={"ETag": f'"{document.version}"'},
    )


async def _scopes(call: Call, region: str | None) -> dict[str, dict[str, int]]:
    """Each scope asked for with its own defaults, as ``QuotaLedger.limit`` applies them
    when allocating: ``*``'s from the global configuration, a region's from the region.
    Without ``region``, ``*`` and every region there is (a tenant may use any of them)."""
    pool = call.platform.store.pool
    documents = call.platform.documents
    if region is not None and region != GLOBAL_REGION:
        found = await documents.get(pool, region)
        if found is None or found.kind != "rgn":
            raise NotFound(f"region {region!r} does not exist", resource_id=region)
        return {region: _defaults(found)}
    scopes = {GLOBAL_REGION: _defaults(await documents.get(pool, GLOBAL_CONFIG_ID))}
    after = None
    while region is None:
        page = await documents.page(pool, kind="rgn", tenant_id=None, limit=500, after=after)
        scopes.update((found.resource_id, _defaults(found)) for found in page.items)
        if page.next_after is None:
            break
        after = page.next_after
    return scopes


def _defaults(document: Document | None) -> dict[str, int]:
    return dict(document.view.get("quota_defaults") or {}) if document is not None else {}


@router.route(
    "GET",
    "/v1/quotas",
    summary="The caller's tenant's usage and limits, in one region or in every one",
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
    summary="A tenant's usage and limits, in one region or in every one",
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
        if body.region != GLOBAL_REGION and await unit.find(body.region, Region) is None:
            raise ValidationFailed(f"region {body.region!r} does not exist", field="region")
        ledger.set_limits(body.region, body.limits)
        return Decided(resource_id=ledger.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))
