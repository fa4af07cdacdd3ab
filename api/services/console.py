"""Console tickets: a short-lived signed token naming one instance's VNC endpoint.

A console proxy (or the host's websockify) checks the ticket with the platform's key and
connects the bearer to that host and port only, until it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import msgspec

from gateways.tokens import TokenSigner

PREFIX = "vnc1"
TTL_SECONDS = 60


class ConsoleTicket(msgspec.Struct, frozen=True, kw_only=True):
    instance_id: str
    host_id: str
    port: int
    expires_at: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issue(signer: TokenSigner, ticket: ConsoleTicket) -> str:
    payload = msgspec.json.encode(ticket)
    signature = hmac.new(signer.purpose_key("console"), payload, hashlib.sha256).digest()
    return f"{PREFIX}.{_b64(payload)}.{_b64(signature)}"


def ticket_for(
    signer: TokenSigner, instance_id: str, host_id: str, port: int, ttl: int = TTL_SECONDS
) -> tuple[str, ConsoleTicket]:
    ticket = ConsoleTicket(
        instance_id=instance_id, host_id=host_id, port=port, expires_at=int(time.time()) + ttl
    )
    return issue(signer, ticket), ticket


def verify(signer: TokenSigner, token: str) -> ConsoleTicket | None:
    """The ticket of a genuine, unexpired console token; None for anything else."""
    try:
        prefix, payload_text, signature_text = token.split(".")
        payload = base64.urlsafe_b64decode(payload_text + "=" * (-len(payload_text) % 4))
        signature = base64.urlsafe_b64decode(signature_text + "=" * (-len(signature_text) % 4))
    except ValueError:
        return None
    expected = hmac.new(signer.purpose_key("console"), payload, hashlib.sha256).digest()
    if prefix != PREFIX or not hmac.compare_digest(expected, signature):
        return None
    try:
        ticket = msgspec.json.decode(payload, type=ConsoleTicket)
    except msgspec.DecodeError:
        return None
    return ticket if ticket.expires_at > time.time() else None
