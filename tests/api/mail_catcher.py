"""A real SMTP server on loopback (the stdlib's ``smtpd``) that keeps what it receives."""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import asyncore
    import smtpd


class _Catcher(smtpd.SMTPServer):
    def __init__(self, received: list[Message], mail_map: dict[int, Any]) -> None:
        super().__init__(("127.0.0.1", 0), None, map=mail_map, decode_data=False)
        self.received = received

    def process_message(
        self, peer: Any, mailfrom: str, rcpttos: list[str], data: bytes | str, **kwargs: Any
    ) -> None:
        raw = data if isinstance(data, bytes) else data.encode()
        self.received.append(message_from_bytes(raw))


@contextlib.contextmanager
def mail_catcher() -> Iterator[tuple[int, list[Message]]]:
    """Yield the port it listens on and the list its messages arrive in."""
    received: list[Message] = []
    mail_map: dict[int, Any] = {}
    server = _Catcher(received, mail_map)
    port = server.socket.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            asyncore.loop(timeout=0.05, map=mail_map, count=1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port, received
    finally:
        stop.set()
        thread.join(5)
        server.close()
