"""Ports for servers a test names for a child process that also starts servers of its own.

A port the test found free with ``bind(0)`` comes from the kernel's ephemeral range, the
range the child's embedded PostgreSQL and NATS take theirs from: once in a few hundred runs
the child's NATS took the very port the test had given its API. Below that range only
ports named on purpose are taken.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 20_000


def port_outside_ephemeral_range() -> int:
    """A port free on 127.0.0.1 now, below the ephemeral range (and above 20,000)."""
    try:
        first_ephemeral = int(EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        first_ephemeral = 32_768
    if first_ephemeral <= LOWEST + 100:
        raise RuntimeError(f"the ephemeral range starts at {first_ephemeral}: no room below it")
    for port in random.sample(range(LOWEST, first_ephemeral), 200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {LOWEST} and {first_ephemeral}")
