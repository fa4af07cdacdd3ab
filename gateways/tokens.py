"""Signed bearer tokens: checked with a key in memory, never with a database query."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

import msgspec

PREFIX = "st1"


class TokenClaims(msgspec.Struct, frozen=True, array_like=True):
    user_id: str
    generation: int
    """The user's token generation when it was issued; a bump revokes older tokens."""
    expires_at: int
    token_id: str


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(TokenClaims)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the token key needs at least 32 bytes")
        self._key = key

    def issue(self, user_id: str, generation: int, ttl_seconds: int) -> tuple[str, TokenClaims]:
        claims = TokenClaims(
            user_id, generation, int(time.time()) + ttl_seconds, secrets.token_hex(8)
        )
        payload = _encoder.encode(claims)
        signature = hmac.new(self._key, payload, hashlib.sha256).digest()
        return f"{PREFIX}.{_b64(payload)}.{_b64(signature)}", claims

    def purpose_key(self, purpose: str) -> bytes:
        """A key derived for one other use (console tickets, request fingerprints): what it
        signs can never pass as a bearer token, nor the other way round."""
        return hmac.new(self._key, f"scloud/{purpose}".encode(), hashlib.sha256).digest()

    def verify(self, token: str) -> TokenClaims | None:
        """The claims of a genuine, unexpired token; None for anything else."""
        try:
            prefix, payload_text, signature_text = token.split(".")
            if prefix != PREFIX:
                return None
            payload, signature = _unb64(payload_text), _unb64(signature_text)
        except ValueError:
            return None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(expected, signature):
            return None
        try:
            claims = _decoder.decode(payload)
        except msgspec.DecodeError:
            return None
        return claims if claims.expires_at > time.time() else None


def hash_secret(secret: str) -> str:
    """API key secrets are 256-bit random strings: one SHA-256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key_secret() -> str:
    return secrets.token_urlsafe(32)


def token_key(configured: str | None, state_dir: Path) -> bytes:
    """The configured key, else the one kept in ``state_dir`` (made on first use)."""
    if configured:
        return bytes.fromhex(configured)
    path = state_dir / "token.key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())
