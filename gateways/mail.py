"""Sending mail over SMTP with the stdlib's ``smtplib``, in a worker thread.

``smtplib`` blocks; each message is sent from ``asyncio.to_thread`` so that a slow or
silent mail server never holds up the event loop. The SMTP password is never in the
platform's configuration: the configuration names a secret, read from the state dir's
``secrets/`` folder (one file per secret) when a message goes out.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from email.message import EmailMessage
from pathlib import Path

import msgspec

TIMEOUT_SECONDS = 30.0


class MailServer(msgspec.Struct, frozen=True, kw_only=True):
    host: str
    port: int
    security: str
    """``starttls``, ``tls`` or ``none``."""
    sender: str
    username: str | None = None
    password: str | None = None


class Mail(msgspec.Struct, frozen=True, kw_only=True):
    to: str
    subject: str
    text: str


class MailFailed(Exception):
    """The server refused the message, or could not be reached."""


def read_secret(state_dir: Path, name: str) -> str | None:
    """The named secret's value, or None when there is no such secret."""
    path = state_dir / "secrets" / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


class SmtpMailer:
    """The mail port's adapter for a real SMTP server."""

    async def send(self, server: MailServer, mail: Mail) -> None:
        await asyncio.to_thread(_send, server, mail)


def _send(server: MailServer, mail: Mail) -> None:
    message = EmailMessage()
    message["From"] = server.sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message.set_content(mail.text)
    context = ssl.create_default_context()
    try:
        if server.security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                server.host, server.port, timeout=TIMEOUT_SECONDS, context=context
            )
        else:
            client = smtplib.SMTP(server.host, server.port, timeout=TIMEOUT_SECONDS)
        with client:
            if server.security == "starttls":
                client.starttls(context=context)
            if server.username is not None and server.password is not None:
                client.login(server.username, server.password)
            client.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise MailFailed(f"{type(error).__name__}: {error}") from error
