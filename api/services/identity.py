"""Decisions of identity commands: tenants, users, keys, roles, projects."""

from __future__ import annotations

from datetime import datetime

from api.auth import api_key_credential
from api.services.executor import Decided
from api.services.notices import queue_notice
from api.services.unit_of_work import UnitOfWork, other_tenants
from domain.billing.account import BillingAccount
from domain.errors import Conflict, InvalidState, NotFound, ValidationFailed
from domain.identity.apikey import ApiKey
from domain.identity.email_claim import EmailClaim, claim_id
from domain.identity.permissions import PLATFORM_ROLES, TENANT_ROLES, Principal, grants
from domain.identity.project import Project
from domain.identity.role import Role
from domain.identity.security_notice import (
    api_key_created,
    password_changed,
    role_actions_changed,
    roles_changed,
)
from domain.identity.tenant import Tenant
from domain.identity.user import User, WrongPassword
from domain.quota.kinds import GLOBAL_REGION
from domain.quota.ledger import QuotaLedger, ledger_id
from domain.settings.global_config import GLOBAL_CONFIG_ID, GlobalConfig
from gateways.passwords import hash_off_loop, verify_off_loop
from gateways.tokens import hash_secret, new_key_secret


async def claim_email(unit: UnitOfWork, email: str, user_id: str) -> None:
    existing = await unit.find(claim_id(email), EmailClaim)
    if existing is None:
        unit.add(EmailClaim.claim(email, user_id))
    elif existing.user_id is None:
        existing.reclaim(user_id)
    else:
        raise Conflict(f"{email} is already in use", field="email")


def check_password(password: str) -> str:
    if len(password) < 12:
        raise ValidationFailed("a password needs at least 12 characters", field="password")
    return password


def check_roles(roles: list[str], *, platform: bool) -> list[str]:
    known = PLATFORM_ROLES if platform else TENANT_ROLES
    unknown = [r for r in roles if r not in known]
    if unknown:
        raise ValidationFailed(f"unknown roles {unknown}; known: {sorted(known)}", field="roles")
    return roles


async def create_tenant(
    unit: UnitOfWork,
    tenant_id: str,
    name: str,
    currency: str,
    owner_email: str,
    owner_password: str,
) -> Decided:
    # The id is chosen before deciding: the events carry it as their tenant.
    tenant = Tenant._create(
        Tenant.Created, id=tenant_id, name=name, currency=currency, contact_email=owner_email
    )
    owner = User(
        email=owner_email,
        password_hash=await hash_off_loop(check_password(owner_password)),
        roles=["owner"],
        tenant_id=tenant.id,
        kind="owner",
    )
    await claim_email(unit, owner_email, owner.id)
    unit.add(tenant)
    unit.add(owner)
    unit.add(QuotaLedger.open(tenant.id))
    # A tenant has its (empty) account from the start, in its currency.
    unit.add(BillingAccount.open(tenant.id, currency))
    return Decided(resource_id=tenant.id, body={"owner_id": owner.id})


async def check_custom_roles(unit: UnitOfWork, tenant_id: str, role_ids: list[str]) -> None:
    for role_id in role_ids:
        role = await unit.find(role_id, Role)
        if role is None or role.tenant_id != tenant_id:
            raise ValidationFailed(f"{role_id} is not a role of this tenant", field="custom_roles")


async def check_projects(unit: UnitOfWork, tenant_id: str, projects: list[str] | None) -> None:
    for project_id in projects or []:
        project = await unit.find(project_id, Project)
        if project is None or project.tenant_id != tenant_id:
            raise ValidationFailed(
                f"{project_id} is not a project of this tenant", field="projects"
            )


async def create_sub_account(
    unit: UnitOfWork,
    tenant_id: str,
    email: str,
    password: str,
    roles: list[str],
    custom_roles: list[str],
    projects: list[str] | None,
) -> Decided:
    check_roles(roles, platform=False)
    if "owner" in roles:
        raise ValidationFailed("a tenant has one owner", field="roles")
    await check_custom_roles(unit, tenant_id, custom_roles)
    await check_projects(unit, tenant_id, projects)
    user = User(
        email=email,
        password_hash=await hash_off_loop(check_password(password)),
        roles=roles,
        tenant_id=tenant_id,
        kind="sub_account",
        custom_roles=custom_roles,
        projects=projects,
    )
    await claim_email(unit, email, user.id)
    ledger = await unit.get(ledger_id(tenant_id), QuotaLedger)
    ledger.allocate(user.id, GLOBAL_REGION, {"sub_accounts": 1}, await global_quota_defaults(unit))
    unit.add(user)
    return Decided(resource_id=user.id)


async def create_platform_user(
    unit: UnitOfWork, email: str, password: str, roles: list[str]
) -> Decided:
    check_roles(roles, platform=True)
    user = User(
        email=email,
        password_hash=await hash_off_loop(check_password(password)),
        roles=roles,
        tenant_id=None,
        kind="platform",
    )
    await claim_email(unit, email, user.id)
    unit.add(user)
    return Decided(resource_id=user.id)


async def user_of(unit: UnitOfWork, user_id: str, tenant_id: str | None) -> User:
    user = await unit.get(user_id, User, checked=True)
    if user.tenant_id != tenant_id:
        raise other_tenants(user_id)
    return user


async def create_api_key(
    unit: UnitOfWork,
    principal: Principal,
    name: str,
    actions: list[str] | None,
    expires_at: datetime | None,
) -> Decided:
    if expires_at is not None and expires_at.tzinfo is None:
        raise ValidationFailed("expires_at needs a timezone", field="expires_at")
    actions = within_key(principal, actions)
    secret = new_key_secret()
    key = ApiKey(
        user_id=principal.user_id,
        tenant_id=principal.tenant_id,
        name=name,
        secret_hash=hash_secret(secret),
        actions=actions,
        expires_at=expires_at,
    )
    if principal.tenant_id is not None:
        ledger = await unit.get(ledger_id(principal.tenant_id), QuotaLedger)
        defaults = await global_quota_defaults(unit)
        ledger.allocate(key.id, GLOBAL_REGION, {"api_keys": 1}, defaults)
    unit.add(key)
    user = await unit.get(principal.user_id, User)
    await queue_notice(
        unit,
        user.email,
        api_key_created(user.email, name, actions),
        user_id=user.id,
        tenant_id=user.tenant_id,
    )
    return Decided(
        resource_id=key.id,
        body={"key_id": key.id},
        secrets={"api_key": api_key_credential(key.id, secret)},
    )


def within_key(principal: Principal, actions: list[str] | None) -> list[str] | None:
    """A key made with a key gets no more than that key: else a narrow key could mint a
    full one (its actions, when none are asked for; only patterns it grants, when some are)."""
    if principal.key_actions is None:
        return actions
    if actions is None:
        return list(principal.key_actions)
    wider = [a for a in actions if not grants(principal.key_actions, a)]
    if wider:
        raise ValidationFailed(
            f"the API key making this one does not grant {wider}", field="actions"
        )
    return actions


async def change_password(
    unit: UnitOfWork, user_id: str, current_password: str, new_hash: str
) -> Decided:
    """One's own password, knowing the current one; every earlier sign-in ends."""
    user = await unit.get(user_id, User)
    if not await verify_off_loop(user.password_hash, current_password):
        raise WrongPassword("the current password is wrong", field="current_password")
    user.change_password(new_hash)
    await _password_notice(unit, user, by_admin=False)
    return Decided(resource_id=user.id)


async def reset_password(unit: UnitOfWork, user_id: str, new_hash: str) -> Decided:
    """An operator's recovery of an account (``scloud admin reset-password``)."""
    user = await unit.get(user_id, User)
    user.change_password(new_hash)
    await _password_notice(unit, user, by_admin=True)
    return Decided(resource_id=user.id)


async def lock_out(unit: UnitOfWork, user_id: str, until: datetime) -> Decided:
    """Record a sign-in lock, so every API process (and a restarted one) keeps it."""
    user = await unit.get(user_id, User)
    if user.locked_until is None or user.locked_until < until:
        user.lock_out(until)
    return Decided(resource_id=user.id)


async def _password_notice(unit: UnitOfWork, user: User, *, by_admin: bool) -> None:
    await queue_notice(
        unit,
        user.email,
        password_changed(user.email, by_admin),
        user_id=user.id,
        tenant_id=user.tenant_id,
    )


async def set_permissions(
    unit: UnitOfWork,
    tenant_id: str,
    user_id: str,
    roles: list[str],
    custom_roles: list[str],
    projects: list[str] | None,
) -> Decided:
    user = await user_of(unit, user_id, tenant_id)
    if user.kind == "owner":
        raise ValidationFailed("the owner's permissions cannot be narrowed")
    check_roles(roles, platform=False)
    await check_custom_roles(unit, tenant_id, custom_roles)
    await check_projects(unit, tenant_id, projects)
    user.set_permissions(roles, custom_roles, projects)
    await queue_notice(
        unit,
        user.email,
        roles_changed(user.email, roles, custom_roles),
        user_id=user.id,
        tenant_id=tenant_id,
    )
    return Decided(resource_id=user.id)


async def set_role_actions(
    unit: UnitOfWork, tenant_id: str, role_id: str, actions: list[str]
) -> Decided:
    """A custom role's new actions; the tenant's contact address is told."""
    role = await unit.get(role_id, Role, checked=True)
    if role.tenant_id != tenant_id:
        raise other_tenants(role_id)
    role.set_actions(actions)
    tenant = await unit.get(tenant_id, Tenant)
    await queue_notice(
        unit,
        tenant.contact_email,
        role_actions_changed(role.name, actions),
        user_id=None,
        tenant_id=tenant_id,
    )
    return Decided(resource_id=role.id)


async def revoke_api_key(unit: UnitOfWork, principal: Principal, key_id: str) -> Decided:
    key = await unit.get(key_id, ApiKey, checked=True)
    if key.tenant_id != principal.tenant_id:
        raise other_tenants(key_id)
    if (
        key.user_id != principal.user_id
        and "owner" not in principal.roles
        and not principal.is_platform
        and "admin" not in principal.roles
    ):
        raise NotFound(f"{key_id} does not exist", resource_id=key_id)
    key.revoke()
    if key.tenant_id is not None:
        ledger = await unit.get(ledger_id(key.tenant_id), QuotaLedger)
        ledger.release(key.id)
    return Decided(resource_id=key.id)


async def disable_user(unit: UnitOfWork, tenant_id: str | None, user_id: str) -> Decided:
    user = await user_of(unit, user_id, tenant_id)
    user.disable()
    if user.tenant_id is not None:
        ledger = await unit.get(ledger_id(user.tenant_id), QuotaLedger)
        ledger.release(user.id)
    claim = await unit.find(claim_id(user.email), EmailClaim)
    if claim is not None and claim.user_id == user.id:
        claim.release()
    return Decided(resource_id=user.id)


async def tenant_of(unit: UnitOfWork, tenant_id: str) -> Tenant:
    return await unit.get(tenant_id, Tenant, checked=True)


def require_active(tenant: Tenant) -> None:
    if tenant.frozen:
        raise InvalidState("the tenant is frozen", tenant_id=tenant.id)


async def global_quota_defaults(unit: UnitOfWork) -> dict[str, int]:
    """The platform's default limits for the region-less scope, set in the global config."""
    config = await unit.find(GLOBAL_CONFIG_ID, GlobalConfig)
    return dict(config.quota_defaults) if config is not None else {}
