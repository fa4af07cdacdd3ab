"""PostgreSQL refuses to run as root, so as root we run it under a system account of its own."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from gateways.embedded.child import RunAs
from gateways.embedded.errors import EmbeddedServiceError


def running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


async def ensure_system_account(name: str) -> RunAs:
    """The uid and gid of system account ``name``, created (no home, no shell) if missing."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        process = await asyncio.create_subprocess_exec(
            *(useradd, "--system", "--user-group", "--no-create-home"),
            *("--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        try:
            # Looked up again rather than trusting the exit status: a concurrent start
            # may have created the account first, and then our useradd fails harmlessly.
            entry = pwd.getpwnam(name)
        except KeyError:
            message = f"cannot create system account {name!r}: {output.decode(errors='replace')}"
            raise EmbeddedServiceError(message) from None
    return RunAs(uid=entry.pw_uid, gid=entry.pw_gid)


def grant_traverse(path: Path) -> None:
    """Let any account pass through (not list) every directory above ``path``.

    The service account must reach its data directory and binaries, which may sit under a
    0700 home or temp directory of root's. Search permission alone reveals no names.
    """
    for parent in path.absolute().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


def hand_over(tree: Path, run_as: RunAs) -> None:
    """Make ``run_as`` the owner of ``tree`` and everything in it (after a copy or restore)."""
    if tree.stat().st_uid == run_as.uid:
        return
    os.chown(tree, run_as.uid, run_as.gid)
    for root, dirs, files in os.walk(tree):
        for name in (*dirs, *files):
            os.chown(os.path.join(root, name), run_as.uid, run_as.gid, follow_symlinks=False)
