"""A second system libvirtd on this machine that poses as another hypervisor, for migrations.

libvirt refuses to migrate a guest to the host it runs on (it compares host UUIDs), and two
daemons on one machine would share their state directories. So the peer runs in a mount
namespace of its own: its own ``/etc/libvirt`` (another ``host_uuid``, TCP on loopback
without auth), ``/run/libvirt``, ``/var/lib/libvirt``, ``/var/cache/libvirt`` and
``/var/log/libvirt``, and ``binds`` mounting its host's directories where the other host
keeps its own, so the same disk and serial paths name the peer's files, as on two machines
with one layout. Only the two daemons started here are stopped afterwards, by pid.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from tests.support.libvirtd import LibvirtdUnavailable, _alive, _pid, _stop, answers

_CONFIG = """
listen_tls = 0
listen_tcp = 1
listen_addr = "127.0.0.1"
tcp_port = "{port}"
auth_tcp = "none"
host_uuid = "5c1a0d5e-0000-4000-8000-{port:012d}"
"""


@contextlib.contextmanager
def peer_libvirtd(workdir: Path, port: int, binds: Mapping[Path, Path]) -> Iterator[str]:
    """The peer's URI (``qemu+tcp://127.0.0.1:<port>/system``) while it runs."""
    uri = f"qemu+tcp://127.0.0.1:{port}/system"
    etc, lib = workdir / "etc", workdir / "lib"
    for name in ("cache", "log"):
        (workdir / name).mkdir(parents=True, exist_ok=True)
    shutil.copytree("/etc/libvirt", etc / "libvirt", symlinks=True)
    for defined in (etc / "libvirt" / "qemu").glob("*.xml"):
        defined.unlink()  # the other daemon's guests are not this one's
    with (etc / "libvirt" / "libvirtd.conf").open("a") as conf:
        conf.write(_CONFIG.format(port=port))
    shutil.copytree("/var/lib/libvirt", lib, symlinks=True)
    pidfiles = (workdir / "virtlogd.pid", workdir / "libvirtd.pid")
    mounts = [
        f"mount --bind {etc / 'libvirt'} /etc/libvirt",
        "mount -t tmpfs tmpfs /run/libvirt",
        f"mount --bind {lib} /var/lib/libvirt",
        f"mount --bind {workdir / 'cache'} /var/cache/libvirt",
        f"mount --bind {workdir / 'log'} /var/log/libvirt",
        *(f"mount --bind {own} {where}" for own, where in binds.items()),
        f"virtlogd -d -p {pidfiles[0]}",
        f"libvirtd -d --listen -p {pidfiles[1]}",
    ]
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-ec", "\n".join(mounts)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LibvirtdUnavailable(f"the peer libvirtd did not start: {done.stderr.strip()}")
    deadline = time.monotonic() + 10
    while any(_pid(path) is None for path in pidfiles) and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [pid for pid in (_pid(path) for path in pidfiles) if pid is not None]
    try:
        if len(pids) != len(pidfiles):
            raise LibvirtdUnavailable(f"the peer's daemons wrote no pid files in {workdir}")
        deadline = time.monotonic() + 60
        while not answers(uri, timeout=5):
            if time.monotonic() > deadline or not all(_alive(pid) for pid in pids):
                raise LibvirtdUnavailable(f"the peer libvirtd does not answer on {uri}")
            time.sleep(0.2)
        yield uri
    finally:
        _stop(pids)
