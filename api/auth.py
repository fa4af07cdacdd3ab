"""Who is calling: a signed token or an API key, resolved from memory only."""

from __future__ import annotations

import hmac

from domain.errors import DomainError
from domain.identity.permissions import Principal
from domain.identity.user import User
from gateways.tokens import TokenSigner, hash_secret
from projections.identity.cache import IdentityCache

API_KEY_PREFIX = "sk"


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401


def principal_for(
    user: User,
    cache: IdentityCache,
    *,
    key_actions: tuple[str, ...] | None = None,
    api_key_id: str | None = None,
) -> Principal:
    custom: list[str] = []
    for role_id in user.custom_roles:
        role = cache.role(role_id)
        if role is not None and role.tenant_id == user.tenant_id:
            custom.extend(role.actions)
    tenant = cache.tenant(user.tenant_id) if user.tenant_id else None
    return Principal(
        user_id=user.id,
        tenant_id=user.tenant_id,
        roles=tuple(user.roles),
        custom_actions=tuple(custom),
        projects=None if user.projects is None else tuple(user.projects),
        key_actions=key_actions,
        api_key_id=api_key_id,
        tenant_frozen=bool(tenant and tenant.frozen),
    )


def authenticate(header: str | None, signer: TokenSigner, cache: IdentityCache) -> Principal:
    """Resolve ``Authorization: Bearer …`` or raise ``Unauthenticated`` saying why."""
    if not header:
        raise Unauthenticated("this endpoint needs a bearer token or an API key")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise Unauthenticated("use 'Authorization: Bearer <token or API key>'")
    credential = credential.strip()
    if credential.startswith(f"{API_KEY_PREFIX}."):
        return _from_api_key(credential, cache)
    claims = signer.verify(credential)
    if claims is None:
        raise Unauthenticated("the token is invalid or has expired")
    user = cache.user(claims.user_id)
    if user is None or user.disabled or user.token_generation != claims.generation:
        raise Unauthenticated("the token was revoked")
    return principal_for(user, cache)


def _from_api_key(credential: str, cache: IdentityCache) -> Principal:
    _, _, rest = credential.partition(".")
    key_id, _, secret = rest.partition(".")
    key = cache.key(key_id)
    if key is None or not secret or not hmac.compare_digest(key.secret_hash, hash_secret(secret)):
        raise Unauthenticated("unknown API key or wrong secret")
    if not key.usable():
        raise Unauthenticated("the API key was revoked or has expired")
    user = cache.user(key.user_id)
    if user is None or user.disabled:
        raise Unauthenticated("the API key's user is disabled")
    actions = None if key.actions is None else tuple(key.actions)
    return principal_for(user, cache, key_actions=actions, api_key_id=key.id)


def api_key_credential(key_id: str, secret: str) -> str:
    return f"{API_KEY_PREFIX}.{key_id}.{secret}"
