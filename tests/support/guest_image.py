"""A tiny bootable guest for real-QEMU tests: Debian's cloud kernel and a busybox initramfs.

The kernel comes from the ``linux-image-*-cloud-amd64`` package, downloaded and unpacked (never
installed); the initramfs holds busybox-static, the two modules ACPI poweroff needs, and an
``/init`` that prints ``SCLOUD-GUEST-UP <instance id>`` on the serial console and then waits,
powering off when libvirt presses the ACPI power button. Everything is cached by kernel
version, so only the first run downloads (about 27 MB) and later ones take milliseconds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

MARKER = "SCLOUD-GUEST-UP"
POWEROFF_MARKER = "SCLOUD-GUEST-POWEROFF"
"""Printed when the guest powers off on the ACPI button (not when it is destroyed)."""
CMDLINE = "console=ttyS0 quiet panic=-1"
BUSYBOX = Path("/bin/busybox")
META_PACKAGE = "linux-image-cloud-amd64"
DEFAULT_CACHE = Path("/var/cache/scloud-test")
"""Not under /root or /tmp/pytest-of-*: QEMU runs as libvirt-qemu and must reach the files."""
MODULES = ("kernel/drivers/input/evdev.ko", "kernel/drivers/acpi/button.ko")
"""Loaded in this order: evdev gives the power button a /dev/input node acpid can read."""

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for module in /lib/modules/*.ko; do insmod "$module"; done
# acpid opens /dev/input/event0.. once, at start: wait for devtmpfs to show every device,
# then for acpid to hold them all, so the marker means "up and listening for the button".
wanted=$(ls /sys/class/input | grep -c event)
i=0
while [ "$(ls /dev/input 2>/dev/null | grep -c event)" -lt "$wanted" ] && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i + 1))
done
acpid -f -c /etc/acpi -l /dev/null &
fds=/proc/$!/fd
i=0
while [ "$(ls -l $fds 2>/dev/null | grep -c /dev/input/)" -lt "$wanted" ] && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i + 1))
done
# libvirt puts the instance id in the SMBIOS serial number.
echo "{MARKER} $(cat /sys/class/dmi/id/product_serial 2>/dev/null || echo unknown)"
while true; do sleep 3600; done
"""
POWER_BUTTON = f"#!/bin/sh\necho {POWEROFF_MARKER} > /dev/console\npoweroff -f\n"


@dataclass(frozen=True)
class GuestImage:
    """Files an image pool registers: an empty base disk, the kernel and the initramfs."""

    disk: Path
    kernel: Path
    initrd: Path
    cmdline: str = CMDLINE


def cache_dir() -> Path:
    return Path(os.environ.get("SCLOUD_TEST_CACHE", DEFAULT_CACHE))


def _run(*args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as error:
        raise RuntimeError(f"cannot run {args[0]}: {error}") from error
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def kernel_package() -> str:
    """The versioned package the cloud kernel meta package depends on right now.

    A fresh machine may have no package lists yet: then they are fetched once.
    """
    for attempt in range(2):
        try:
            depends = _run("apt-cache", "depends", "--important", META_PACKAGE)
        except RuntimeError:
            depends = ""
        for line in depends.splitlines():
            name = line.strip().removeprefix("Depends:").strip()
            if name.startswith("linux-image-") and name != META_PACKAGE:
                return name
        if attempt == 0:
            _run("apt-get", "update", "-qq")
    raise RuntimeError(f"apt knows no kernel behind {META_PACKAGE}, even after apt-get update")


def _download_kernel(package: str, version: str, into: Path) -> tuple[bytes, dict[str, bytes]]:
    """The kernel image and the modules we need, from ``apt-get download`` + ``dpkg-deb -x``."""
    with tempfile.TemporaryDirectory(dir=into) as scratch:
        work = Path(scratch)
        # apt's _apt user downloads into the directory; a private temp dir only earns a warning.
        work.chmod(0o755)
        try:
            _run("apt-get", "download", "-q", package, cwd=work)
        except RuntimeError:  # stale package lists name a version the mirror dropped
            _run("apt-get", "update", "-qq")
            _run("apt-get", "download", "-q", package, cwd=work)
        (deb,) = work.glob("*.deb")
        _run("dpkg-deb", "-x", str(deb), str(work / "tree"))
        modules = work / "tree" / "lib" / "modules" / version
        return (
            (work / "tree" / "boot" / f"vmlinuz-{version}").read_bytes(),
            {Path(module).name: (modules / module).read_bytes() for module in MODULES},
        )


def _cpio_newc(entries: list[tuple[str, int, bytes]]) -> bytes:
    """An uncompressed ``newc`` archive of (name, mode, data); directories have no data."""
    out = io.BytesIO()

    def pad() -> None:
        out.write(b"\0" * (-out.tell() % 4))

    for ino, (name, mode, data) in enumerate([*entries, ("TRAILER!!!", 0, b"")], start=1):
        encoded = name.encode() + b"\0"
        fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        out.write(b"070701" + b"".join(b"%08X" % field for field in fields) + encoded)
        pad()
        out.write(data)
        pad()
    return out.getvalue()


def _initramfs(modules: dict[str, bytes]) -> bytes:
    directory, executable, regular = 0o040755, 0o100755, 0o100644
    entries: list[tuple[str, int, bytes]] = [
        (name, directory, b"")
        for name in ("bin", "dev", "proc", "sys", "etc", "etc/acpi", "etc/acpi/PWRF", "lib")
    ]
    entries.append(("lib/modules", directory, b""))
    for index, (name, data) in enumerate(modules.items()):
        entries.append((f"lib/modules/{index}-{name}", regular, data))
    entries += [
        ("bin/busybox", executable, BUSYBOX.read_bytes()),
        ("init", executable, INIT.encode()),
        # busybox acpid runs ./PWRF/00000080 in its config dir for the power button.
        ("etc/acpi/PWRF/00000080", executable, POWER_BUTTON.encode()),
    ]
    return gzip.compress(_cpio_newc(entries), compresslevel=1, mtime=0)


def guest_image(cache: Path | None = None) -> GuestImage:
    """The cached guest, built (and its kernel downloaded) on first use.

    A guest is built in a scratch directory and renamed into place, so an interrupted
    build is never taken for a finished one.
    """
    root = cache or cache_dir()
    package = kernel_package()
    version = package.removeprefix("linux-image-")
    recipe = hashlib.sha256(
        "\0".join([INIT, POWER_BUTTON, CMDLINE, *MODULES]).encode()
    ).hexdigest()[:8]
    guest = root / "guests" / f"{version}-{recipe}"
    image = GuestImage(
        disk=guest / "empty.qcow2", kernel=guest / "vmlinuz", initrd=guest / "initrd.gz"
    )
    if not guest.is_dir():
        if not BUSYBOX.is_file():
            raise RuntimeError(f"{BUSYBOX} is missing: apt-get install busybox-static")
        guest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=guest.parent) as scratch:
            work = Path(scratch)
            work.chmod(0o755)  # apt's _apt user downloads inside
            kernel, modules = _download_kernel(package, version, work)
            (work / image.kernel.name).write_bytes(kernel)
            (work / image.initrd.name).write_bytes(_initramfs(modules))
            _run("qemu-img", "create", "-q", "-f", "qcow2", str(work / image.disk.name), "64M")
            os.rename(work, guest)
            work.mkdir()  # for TemporaryDirectory's cleanup
    # QEMU runs as libvirt-qemu: every directory on the way must let it through.
    for directory in (root, root / "guests", guest):
        directory.chmod(0o755)
    return image
