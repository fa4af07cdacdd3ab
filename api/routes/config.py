"""The platform's global configuration: recycle bin, billing, mail, sign-in, quota defaults."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.listing import Accepted
from api.routes.regions import Limit, Name
from api.routing import Router
from api.services import inventory
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from api.text import Body, Email
from domain.errors import NotFound
from domain.settings.global_config import GLOBAL_CONFIG_ID, GlobalConfig

router = Router()

MailSecurity = Literal["starttls", "tls", "none"]


def _between(low: int, high: int) -> msgspec.Meta:
    return msgspec.Meta(ge=low, le=high)


class RecycleBin(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    retention_days: Annotated[int, _between(0, 3650)]
    """How long deleted resources can be restored before they are purged."""


class Billing(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    default_currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")] | None = None
    freeze_on_arrears: bool | None = None
    """Freeze a tenant whose balance stays negative past the grace days."""
    grace_days: Annotated[int, _between(0, 365)] | None = None


class Mail(Body, kw_only=True, forbid_unknown_fields=True):
    """No password here: ``password_secret`` names the secret that holds it."""

    smtp_host: Annotated[str, msgspec.Meta(min_length=1, max_length=253)] | None = None
    smtp_port: Annotated[int, _between(1, 65535)] | None = None
    security: MailSecurity | None = None
    from_address: Email | None = None
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=254)] | None = None
    password_secret: Name | None = None


class LoginPolicy(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    password_min_length: Annotated[int, _between(8, 128)] | None = None
    token_ttl_hours: Annotated[int, _between(1, 720)] | None = None
    lockout_threshold: Annotated[int, _between(0, 100)] | None = None
    """Failed sign-ins before an account locks; 0 never locks."""


class UpdateConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    recycle_bin: RecycleBin | None = None
    billing: Billing | None = None
    mail: Mail | None = None
    login_policy: LoginPolicy | None = None
    quota_defaults: dict[str, Limit | None] | None = None
    """Limits for the ``*`` scope; null drops a kind's default back to the built-in one."""


class BillingView(msgspec.Struct, kw_only=True):
    default_currency: str
    freeze_on_arrears: bool
    grace_days: int


class MailView(msgspec.Struct, kw_only=True):
    smtp_host: str | None
    smtp_port: int
    security: MailSecurity
    from_address: str | None
    username: str | None
    password_secret: str | None


class LoginPolicyView(msgspec.Struct, kw_only=True):
    password_min_length: int
    token_ttl_hours: int
    lockout_threshold: int


class ConfigView(msgspec.Struct, kw_only=True):
    id: str
    recycle_bin: RecycleBin
    billing: BillingView
    mail: MailView
    login_policy: LoginPolicyView
    quota_defaults: dict[str, int]


def _given(section: msgspec.Struct | None) -> dict[str, object] | None:
    return None if section is None else msgspec.structs.asdict(section)


@router.route(
    "GET",
    "/v1/admin/config",
    summary="The global configuration",
    action="admin:config:read",
    response=ConfigView,
    tags=("config",),
)
async def get_config(call: Call) -> web.Response:
    try:
        document = await call.document(GLOBAL_CONFIG_ID, "cfg", "admin:config:read")
    except NotFound:
        # Never changed yet: the defaults, at version 0 (If-Match: "0" changes them).
        return json_response(GlobalConfig.establish().view(), headers={"ETag": '"0"'})
    return await call.one(document)


@router.route(
    "PATCH",
    "/v1/admin/config",
    summary="Change sections of the global configuration",
    action="admin:config:update",
    body=UpdateConfig,
    response=Accepted,
    status=202,
    tags=("config",),
)
async def update_config(call: Call) -> web.Response:
    body: UpdateConfig = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await inventory.configure(
            unit,
            recycle_bin=_given(body.recycle_bin),
            billing=_given(body.billing),
            mail=_given(body.mail),
            login_policy=_given(body.login_policy),
            quota_defaults=body.quota_defaults,
        )

    return call.accepted(await call.execute(decide, tenant_id=None))
