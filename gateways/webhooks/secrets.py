"""Webhook signing secrets, derived from the platform key rather than stored.

The dispatcher must hold each secret to sign with it, so it cannot keep only a hash as
we do for API keys. Rather than keeping the secret encrypted in an append-only log that
can never forget it, we derive it: ``HMAC(root, webhook id, salt)`` where ``root`` comes
from the token key through HKDF (RFC 5869). The event store keeps only the salt (not
secret) and a fingerprint of the key, so a dump of the database signs nothing; rotating
a webhook's secret is a new salt. Changing the token key changes every secret: the
dispatcher notices by the fingerprint and refuses to sign with a secret the tenant
never saw.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from pathlib import Path

from gateways.settings import Settings
from gateways.tokens import token_key

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix of every secret, not one)


def hkdf_sha256(key: bytes, *, salt: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-SHA256 extract-then-expand (RFC 5869)."""
    pseudo_random = hmac.new(salt, key, hashlib.sha256).digest()
    output, block, counter = b"", b"", 1
    while len(output) < length:
        block = hmac.new(pseudo_random, block + info + bytes([counter]), hashlib.sha256).digest()
        output += block
        counter += 1
    return output[:length]


class WebhookSecrets:
    def __init__(self, platform_key: bytes) -> None:
        self._root = hkdf_sha256(
            platform_key, salt=b"scloudstack", info=b"webhook signing secrets v1"
        )
        self.key_id = hmac.new(self._root, b"key id", hashlib.sha256).hexdigest()[:16]
        """Fingerprint of the key in force, recorded with each webhook's salt."""

    @staticmethod
    def new_salt() -> str:
        return secrets.token_hex(16)

    def secret(self, webhook_id: str, salt: str) -> str:
        """The webhook's signing secret, as shown to its tenant (``whsec_…``)."""
        raw = hmac.new(self._root, f"{webhook_id}\x00{salt}".encode(), hashlib.sha256).digest()
        return SECRET_PREFIX + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@functools.lru_cache(maxsize=8)
def _cached(configured: str | None, state_dir: Path) -> WebhookSecrets:
    return WebhookSecrets(token_key(configured, state_dir))


def webhook_secrets(settings: Settings) -> WebhookSecrets:
    """The platform's webhook secrets, from the same key that signs bearer tokens."""
    return _cached(settings.token_key, settings.state_dir)
