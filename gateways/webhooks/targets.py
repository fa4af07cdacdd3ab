"""Where a webhook may point: public addresses only, unless an admin allowed otherwise.

The judging itself is ``gateways.public_addresses`` (shared with image imports); this
module turns its answer into the webhook's own 422 problems.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from domain.subscriptions.webhook import WebhookTargetNotPublic, WebhookTargetUnresolvable
from gateways.public_addresses import (
    Address,
    NotPublic,
    PublicOnlyResolver,
    Resolve,
    check_public,
    literal,
    refusal,
    resolve,
)

__all__ = ["Address", "PublicOnlyResolver", "check_target", "literal", "refusal"]


async def check_target(url: str, *, allow_private: bool, resolver: Resolve = resolve) -> None:
    """Raise a 422 error unless every address ``url`` resolves to is public."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        await check_public(host, parts.port or 443, resolver)
    except NotPublic as refused:
        raise WebhookTargetNotPublic(
            f"{host} resolves to {refused.address}, a {refused.reason} address; webhooks go "
            "to public addresses unless a platform admin allows private targets for this "
            "webhook",
            field="url",
            address=str(refused.address),
        ) from None
    except OSError as error:
        raise WebhookTargetUnresolvable(f"{host} does not resolve: {error}", field="url") from None
