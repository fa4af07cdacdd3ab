"""How a host daemon joins the platform: a NATS request with its join token, one reply.

The daemon sends a ``RegisterRequest`` to ``hosts.register`` (``SCLOUD_HOST_REGISTER_SUBJECT``);
the platform's registrar (queue group ``scloud-host-registrar``) checks the token against the
store and answers a ``RegisterReply``: the host id to run under, or why it was refused. The
daemon never talks to PostgreSQL. ``request_id`` makes a retried request (a lost reply) answer
what the first did.
"""

from __future__ import annotations

import msgspec

REGISTER_SUBJECT = "hosts.register"
QUEUE_GROUP = "scloud-host-registrar"
TOKEN_PREFIX = "sjt"  # noqa: S105 - a prefix, not a secret


class RegisterGpu(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    model: str


class RegisterRequest(msgspec.Struct, frozen=True, kw_only=True):
    token: str
    """``sjt.<jtk-id>.<secret>``, as the admin was shown it."""
    request_id: str
    """The daemon's own id for this attempt: sent again unchanged when it retries."""
    hostname: str
    capacity: dict[str, int]
    """vcpus, memory_mb, disk_gb."""
    gpus: tuple[RegisterGpu, ...] = ()


class RegisterReply(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    ok: bool
    host_id: str | None = None
    cluster_id: str | None = None
    code: str | None = None
    """Why it was refused (``join_token_used``, ``join_token_expired``, …)."""
    reason: str | None = None
    operation_id: str | None = None


def join_token(token_id: str, secret: str) -> str:
    return f"{TOKEN_PREFIX}.{token_id}.{secret}"


def split_token(token: str) -> tuple[str, str] | None:
    """(token id, secret) of a well-formed join token; None for anything else."""
    parts = token.strip().split(".")
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or not parts[2]:
        return None
    return parts[1], parts[2]


encode = msgspec.json.Encoder().encode
decode_request = msgspec.json.Decoder(RegisterRequest).decode
decode_reply = msgspec.json.Decoder(RegisterReply).decode
