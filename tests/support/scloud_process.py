"""``scloud run`` as a child process, as an operator starts it: only the ``SCLOUD_*``
variables a test names, stdout piped for its banner, stderr to a log beside the state dir."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


async def start_scloud_run(
    state_dir: Path, settings: dict[str, str], *, append_log: bool = False
) -> tuple[asyncio.subprocess.Process, Path]:
    """The started process and its log file."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SCLOUD_")}
    env |= {"PYTHONPATH": str(REPO), "SCLOUD_STATE_DIR": str(state_dir), **settings}
    log = state_dir.parent / f"{state_dir.name}.log"
    with log.open("ab" if append_log else "wb") as err:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "api.cli", "run"),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
        )
    assert process.stdout is not None
    return process, log
