"""The starter image: a tiny bootable guest, Debian's cloud kernel and a busybox initramfs.

Built at install time (``make install``) and registered by the first start of ``scloud run``
as the local cloud's first image; the real-QEMU tests boot the same guest.

The kernel comes from the ``linux-image-*-cloud-amd64`` package, downloaded and unpacked (never
installed); the initramfs holds busybox-static, the modules ACPI poweroff and the virtio
console need, this machine's ``qemu-ga`` (qemu-guest-agent) and shadow's ``chpasswd`` with the
shared libraries they load, and an ``/init`` that starts the agent, prints
``SCLOUD-GUEST-UP <instance id>`` on the serial console and then waits, powering off when
libvirt presses the ACPI power button and printing every /etc/shadow line that changes (a
password set through the agent) as ``SCLOUD-SHADOW <line>``. Everything is cached by kernel
version and by the initramfs's content, so only the first run downloads (about 27 MB) and
later ones take milliseconds.
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
SHADOW_MARKER = "SCLOUD-SHADOW"
"""Prefixes each /etc/shadow line at boot and each one that changes later, e.g.
``SCLOUD-SHADOW root:$6$…:20424:0:99999:7:::``."""
CMDLINE = "console=ttyS0 quiet panic=-1"
BUSYBOX = Path("/bin/busybox")
AGENT = Path("/usr/sbin/qemu-ga")
CHPASSWD = Path("/usr/sbin/chpasswd")
"""What qemu-ga's guest-set-user-password runs (``chpasswd -e`` for a hash), found on PATH:
busybox-static in Debian has no chpasswd applet, so shadow's own (package passwd) comes along."""
AGENT_PORT = "org.qemu.guest_agent.0"
META_PACKAGE = "linux-image-cloud-amd64"
DEFAULT_CACHE = Path("/var/cache/scloud-test")
"""The tests' cache. Not under /root or /tmp/pytest-of-*: QEMU runs as libvirt-qemu and must
reach the files."""
STARTER_DIR = Path("/var/cache/scloud/starter")
"""Where ``make install`` builds the starter image for ``scloud run``."""
MODULES = (
    "kernel/drivers/input/evdev.ko",
    "kernel/drivers/acpi/button.ko",
    "kernel/drivers/virtio/virtio_ring.ko",
    "kernel/drivers/virtio/virtio.ko",
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko",
    "kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
    "kernel/drivers/char/virtio_console.ko",
)
"""Loaded in this order (each after what it depends on): evdev gives the power button a
/dev/input node acpid can read; virtio_console gives the guest agent its port. One the kernel
has built in (``modules.builtin``) is skipped."""
ACCOUNTS = (("root", 0, "/root"), ("debian", 1000, "/home/debian"))
"""(user, uid, home) of the guest's accounts, each without a password (``*``) until one is set."""
PASSWD = "".join(f"{user}:x:{uid}:{uid}:{user}:{home}:/bin/sh\n" for user, uid, home in ACCOUNTS)
SHADOW = "".join(f"{user}:*:19000:0:99999:7:::\n" for user, _, _ in ACCOUNTS)
GROUP = "".join(f"{user}:x:{uid}:\n" for user, uid, _ in ACCOUNTS)

INIT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
# The kernel gives init no PATH; qemu-ga finds chpasswd on the one it inherits.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
for module in /lib/modules/*.ko; do insmod "$module"; done
# What udev does: /dev/virtio-ports/<name> for each named port. QEMU announces the ports
# (and then their names) after the driver probes, so wait for the agent's.
mkdir -p /dev/virtio-ports
i=0
while [ ! -e /dev/virtio-ports/{AGENT_PORT} ] && [ $i -lt 100 ]; do
    for port in /sys/class/virtio-ports/*; do
        name=$(cat "$port/name" 2>/dev/null) && [ -n "$name" ] || continue
        ln -sf "/dev/${{port##*/}}" "/dev/virtio-ports/$name"
    done
    [ -e /dev/virtio-ports/{AGENT_PORT} ] || sleep 0.1
    i=$((i + 1))
done
qemu-ga -m virtio-serial -p /dev/virtio-ports/{AGENT_PORT} -t /run -f /run/qemu-ga.pid &
agent=/proc/$!/fd
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
# The agent holds its port open once it listens: then libvirt sees it connected.
i=0
while ! ls -l $agent 2>/dev/null | grep -q /dev/vport && [ $i -lt 50 ]; do
    sleep 0.1; i=$((i + 1))
done
sed "s/^/{SHADOW_MARKER} /" /etc/shadow
cp /etc/shadow /run/shadow.shown
# libvirt puts the instance id in the SMBIOS serial number.
echo "{MARKER} $(cat /sys/class/dmi/id/product_serial 2>/dev/null || echo unknown)"
# chpasswd replaces /etc/shadow by a rename: a copy is one whole version of it.
while true; do
    cp /etc/shadow /run/shadow.now
    if ! cmp -s /run/shadow.now /run/shadow.shown; then
        grep -vxF -f /run/shadow.shown /run/shadow.now | sed "s/^/{SHADOW_MARKER} /"
        mv /run/shadow.now /run/shadow.shown
    fi
    sleep 0.2
done
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
        # Fixed programs of this machine (apt-get, dpkg-deb, ldd, qemu-img): no tenant input.
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)  # noqa: S603
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
        builtin = set((modules / "modules.builtin").read_text().split())
        return (
            (work / "tree" / "boot" / f"vmlinuz-{version}").read_bytes(),
            {
                Path(module).name: (modules / module).read_bytes()
                for module in MODULES
                if module not in builtin
            },
        )


def _shared_libraries(binary: Path) -> list[Path]:
    """What the dynamic loader maps for ``binary``, the loader itself included (``ldd``)."""
    found: list[Path] = []
    for line in _run("ldd", str(binary)).splitlines():
        words = line.split()
        if "=>" in words:
            target = words[words.index("=>") + 1]
            if not target.startswith("/"):
                raise RuntimeError(f"{binary} needs {words[0]}, which ldd cannot find")
            found.append(Path(target))
        elif words and words[0].startswith("/"):
            found.append(Path(words[0]))  # the loader, named by its absolute path
    return found


def _host_files() -> dict[str, bytes]:
    """The executables the guest takes from this machine, with their libraries, by path."""
    for binary, package in (
        (BUSYBOX, "busybox-static"),
        (AGENT, "qemu-guest-agent"),
        (CHPASSWD, "passwd"),
    ):
        if not binary.is_file():
            raise RuntimeError(f"{binary} is missing: apt-get install {package}")
    files = {str(BUSYBOX): BUSYBOX.read_bytes()}
    for binary in (AGENT, CHPASSWD):
        files[str(binary)] = binary.read_bytes()
        for library in _shared_libraries(binary):
            files[str(library)] = library.read_bytes()  # through symlinks: the file itself
    return files


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


def _initramfs(modules: dict[str, bytes], host_files: dict[str, bytes]) -> bytes:
    directory, executable, regular = 0o040755, 0o100755, 0o100644
    files: dict[str, tuple[int, bytes]] = {
        path.lstrip("/"): (executable, data) for path, data in host_files.items()
    }
    for index, (name, data) in enumerate(modules.items()):
        files[f"lib/modules/{index:02d}-{name}"] = (regular, data)  # the glob keeps the order
    files |= {
        "init": (executable, INIT.encode()),
        # busybox acpid runs ./PWRF/00000080 in its config dir for the power button.
        "etc/acpi/PWRF/00000080": (executable, POWER_BUTTON.encode()),
        "etc/passwd": (regular, PASSWD.encode()),
        "etc/group": (regular, GROUP.encode()),
        "etc/shadow": (0o100640, SHADOW.encode()),
    }
    directories = {"dev", "proc", "sys", "run", "tmp", *(home[1:] for _, _, home in ACCOUNTS)}
    for path in [*files, *directories]:
        parent = Path(path).parent
        while parent != Path("."):
            directories.add(str(parent))
            parent = parent.parent
    entries = [(name, directory, b"") for name in sorted(directories)]
    entries += [(name, mode, data) for name, (mode, data) in files.items()]
    return gzip.compress(_cpio_newc(entries), compresslevel=1, mtime=0)


def guest_image(cache: Path | None = None) -> GuestImage:
    """The cached guest, built (and its kernel downloaded) on first use.

    A guest is built in a scratch directory and renamed into place, so an interrupted
    build is never taken for a finished one.
    """
    root = cache or cache_dir()
    package = kernel_package()
    version = package.removeprefix("linux-image-")
    host_files = _host_files()
    # Keyed by everything that goes in, so an upgraded qemu-ga or libc makes a new guest.
    recipe = hashlib.sha256()
    for part in (INIT, POWER_BUTTON, CMDLINE, PASSWD, SHADOW, GROUP, *MODULES):
        recipe.update(part.encode() + b"\0")
    for path, data in sorted(host_files.items()):
        recipe.update(path.encode() + b"\0" + hashlib.sha256(data).digest())
    guest = root / "guests" / f"{version}-{recipe.hexdigest()[:8]}"
    image = GuestImage(
        disk=guest / "empty.qcow2", kernel=guest / "vmlinuz", initrd=guest / "initrd.gz"
    )
    if not guest.is_dir():
        guest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=guest.parent) as scratch:
            work = Path(scratch)
            work.chmod(0o755)  # apt's _apt user downloads inside
            kernel, modules = _download_kernel(package, version, work)
            (work / image.kernel.name).write_bytes(kernel)
            (work / image.initrd.name).write_bytes(_initramfs(modules, host_files))
            _run("qemu-img", "create", "-q", "-f", "qcow2", str(work / image.disk.name), "64M")
            os.rename(work, guest)
            work.mkdir()  # for TemporaryDirectory's cleanup
    # QEMU runs as libvirt-qemu: every directory on the way must let it through.
    for directory in (root, root / "guests", guest):
        directory.chmod(0o755)
    return image


def main(argv: list[str] | None = None) -> int:
    """``python -m gateways.starter_image [DIR]``: build (or find) the starter image."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else STARTER_DIR
    try:
        image = guest_image(root)
    except (RuntimeError, OSError) as error:
        print(f"starter image not built ({error}); scloud run starts without one", file=sys.stderr)
        return 1
    print(f"starter image: {image.disk.parent}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
