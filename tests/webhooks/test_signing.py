"""Signatures verify with the snippet docs/webhooks.md gives receivers; secrets are derived."""

from __future__ import annotations

import hashlib
import hmac
import time

from gateways.webhooks.secrets import WebhookSecrets, hkdf_sha256
from gateways.webhooks.signing import signature, verify
from tests.webhooks.conftest import documented_verifier

BODY = b'{"position":7,"type":"Frozen","tenant_id":"tnt-1"}'
SECRET = "whsec_test-secret"


def test_the_documented_snippet_accepts_our_signature() -> None:
    verify_signature = documented_verifier()
    header = signature(SECRET, int(time.time()), BODY)
    assert verify_signature(SECRET, header, BODY)
    assert verify(SECRET, header, BODY)


def test_the_documented_snippet_refuses_tampering_old_times_and_other_secrets() -> None:
    verify_signature = documented_verifier()
    now = int(time.time())
    header = signature(SECRET, now, BODY)
    assert not verify_signature(SECRET, header, BODY.replace(b"7", b"8"))
    assert not verify_signature("whsec_another", header, BODY)
    assert not verify_signature(SECRET, header.replace(f"t={now}", f"t={now - 1}"), BODY)
    assert not verify_signature(SECRET, signature(SECRET, now - 600, BODY), BODY)
    assert not verify_signature(SECRET, "garbage", BODY)
    assert not verify(SECRET, signature(SECRET, now - 600, BODY), BODY)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()
    assert signature(SECRET, 1_700_000_000, BODY) == f"t=1700000000,v1={expected}"


def test_hkdf_matches_rfc_5869_test_case_1() -> None:
    okm = hkdf_sha256(
        bytes.fromhex("0b" * 22),
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_secrets_are_derived_per_webhook_salt_and_platform_key() -> None:
    secrets = WebhookSecrets(b"k" * 32)
    first = secrets.secret("whk-1", "salt-a")
    assert first.startswith("whsec_") and len(first) > 40
    assert secrets.secret("whk-1", "salt-a") == first
    assert WebhookSecrets(b"k" * 32).secret("whk-1", "salt-a") == first
    assert secrets.secret("whk-1", "salt-b") != first
    assert secrets.secret("whk-2", "salt-a") != first
    other_key = WebhookSecrets(b"j" * 32)
    assert other_key.secret("whk-1", "salt-a") != first
    assert other_key.key_id != secrets.key_id
    assert secrets.new_salt() != secrets.new_salt()
