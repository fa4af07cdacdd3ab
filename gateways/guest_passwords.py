"""Guest passwords as crypt(3) SHA-512 hashes (``$6$…``), what /etc/shadow and cloud-init's
``hashed_passwd`` take: made by ``openssl passwd -6``, the plaintext given on its stdin only.
"""

from __future__ import annotations

import asyncio
import re

_HASH = re.compile(r"^\$6\$[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$")


class HashingFailed(RuntimeError):
    """openssl is missing or refused: the password cannot be hashed here."""


def is_sha512_crypt(text: str) -> bool:
    return _HASH.fullmatch(text) is not None


async def sha512_crypt(password: str, *, salt: str | None = None, openssl: str = "openssl") -> str:
    """The SHA-512 crypt hash of ``password`` with a random salt (or ``salt``, for checks).

    The password travels on stdin, never on a command line another process could read.
    """
    if "\n" in password or "\r" in password or "\x00" in password:
        raise ValueError("a password cannot hold line breaks or NUL")
    args = [openssl, "passwd", "-6", "-stdin"]
    if salt is not None:
        args[3:3] = ["-salt", salt]
    try:
        process = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as error:
        raise HashingFailed(f"cannot run {openssl}: {error}") from error
    output, errors = await process.communicate(password.encode() + b"\n")
    hashed = output.decode().strip()
    if process.returncode != 0 or not is_sha512_crypt(hashed):
        raise HashingFailed(f"openssl passwd -6 failed: {errors.decode(errors='replace').strip()}")
    return hashed
