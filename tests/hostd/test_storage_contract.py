"""One contract for every storage driver: qcow2 overlays through qemu-img and the simulated one."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from hostd.storage.port import ImageSource, StorageDriver, StorageError
from hostd.storage.qcow2 import Qcow2Storage
from hostd.storage.simulated import SimulatedStorage


def _qemu_info(path: str) -> dict[str, object]:
    command = ["qemu-img", "info", "-U", "--output=json", path]
    info: dict[str, object] = json.loads(
        subprocess.run(command, check=True, capture_output=True).stdout
    )
    return info


def _inode(path: str) -> int:
    return os.stat(path).st_ino


@pytest.fixture
def base_image(tmp_path: Path) -> Path:
    """A tiny qcow2 base image (1 MiB) in the test's own directory."""
    image = tmp_path / "images" / "tiny.qcow2"
    image.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"], check=True)
    return image


@pytest.fixture(params=["qcow2", "simulated"])
async def storage(
    request: pytest.FixtureRequest, tmp_path: Path, base_image: Path
) -> AsyncIterator[StorageDriver]:
    if request.param == "qcow2":
        yield Qcow2Storage(tmp_path / "state", pools=[base_image.parent])
    else:
        yield SimulatedStorage(images={str(base_image)}, pools=[str(base_image.parent)])


async def test_a_root_disk_is_made_from_the_image_at_the_asked_size(
    storage: StorageDriver, base_image: Path
) -> None:
    assert await storage.root_disk("i-one") is None
    disk = await storage.ensure_root_disk(
        "i-one", image_location=str(base_image), image_format="qcow2", size_gb=2
    )
    assert disk.size_gb == 2
    assert await storage.root_disk("i-one") == disk


async def test_ensuring_twice_keeps_the_same_disk(storage: StorageDriver, base_image: Path) -> None:
    first = await storage.ensure_root_disk(
        "i-two", image_location=str(base_image), image_format="qcow2", size_gb=1
    )
    again = await storage.ensure_root_disk(
        "i-two", image_location=str(base_image), image_format="qcow2", size_gb=1
    )
    assert again == first


async def test_a_disk_keeps_the_step_that_made_it_until_it_is_deleted(
    storage: StorageDriver, base_image: Path
) -> None:
    made = await storage.ensure_root_disk(
        "i-mark", image_location=str(base_image), image_format="qcow2", size_gb=1, made_by="stp-a"
    )
    assert made.made_by == "stp-a"
    later = await storage.ensure_root_disk(
        "i-mark", image_location=str(base_image), image_format="qcow2", size_gb=2, made_by="stp-b"
    )
    assert later.made_by == "stp-a", "an existing disk is not made again by the asking step"
    found = await storage.root_disk("i-mark")
    assert found is not None and found.made_by == "stp-a"
    await storage.delete_root_disk("i-mark")
    remade = await storage.ensure_root_disk(
        "i-mark", image_location=str(base_image), image_format="qcow2", size_gb=1
    )
    assert remade.made_by is None


async def test_a_disk_grows_but_never_shrinks(storage: StorageDriver, base_image: Path) -> None:
    await storage.ensure_root_disk(
        "i-three", image_location=str(base_image), image_format="qcow2", size_gb=1
    )
    grown = await storage.ensure_root_disk(
        "i-three", image_location=str(base_image), image_format="qcow2", size_gb=3
    )
    assert grown.size_gb == 3
    with pytest.raises(StorageError, match="shrinking"):
        await storage.ensure_root_disk(
            "i-three", image_location=str(base_image), image_format="qcow2", size_gb=2
        )
    current = await storage.root_disk("i-three")
    assert current is not None and current.size_gb == 3


async def test_a_missing_image_fails_with_a_cause(storage: StorageDriver, tmp_path: Path) -> None:
    missing = str(tmp_path / "images" / "gone.qcow2")
    with pytest.raises(StorageError, match=re.escape("gone.qcow2")):
        await storage.ensure_root_disk(
            "i-four", image_location=missing, image_format="qcow2", size_gb=1
        )
    assert await storage.root_disk("i-four") is None


async def test_deleting_is_idempotent(storage: StorageDriver, base_image: Path) -> None:
    await storage.ensure_root_disk(
        "i-five", image_location=str(base_image), image_format="qcow2", size_gb=1
    )
    for _ in range(2):
        await storage.delete_root_disk("i-five")
    assert await storage.root_disk("i-five") is None


async def test_qcow2_disks_are_overlays_backed_by_the_image(
    tmp_path: Path, base_image: Path
) -> None:
    storage = Qcow2Storage(tmp_path / "state", pools=[tmp_path / "images", tmp_path / "pool"])
    disk = await storage.ensure_root_disk(
        "i-six", image_location=str(base_image), image_format="qcow2", size_gb=4
    )
    assert disk.path == str(tmp_path / "state" / "disks" / "i-six.qcow2")
    info = _qemu_info(disk.path)
    assert info["backing-filename"] == str(base_image)
    assert info["virtual-size"] == 4 * 1024**3
    assert isinstance(info["actual-size"], int) and info["actual-size"] < 1024**2
    inode = _inode(disk.path)
    await storage.ensure_root_disk(
        "i-six", image_location=str(base_image), image_format="qcow2", size_gb=4
    )
    assert _inode(disk.path) == inode, "an existing disk is never recreated"


async def test_qcow2_refuses_disk_files_outside_its_directory(tmp_path: Path) -> None:
    storage = Qcow2Storage(tmp_path / "state", pools=[tmp_path / "images", tmp_path / "pool"])
    with pytest.raises(StorageError):
        await storage.delete_root_disk("../etc/passwd")


# -- images: import from a URL or the pool's incoming directory, export of a disk ----------


@pytest.fixture
def pool(tmp_path: Path) -> Path:
    """An image pool directory with a raw 2 MiB file in its incoming directory."""
    root = tmp_path / "pool"
    (root / "incoming").mkdir(parents=True)
    (root / "incoming" / "disk.raw").write_bytes(b"\xeb\x63" + bytes(2 * 1024**2 - 2))
    return root


@pytest.fixture
async def served(pool: Path) -> AsyncIterator[str]:
    """A loopback HTTP server handing out the pool's incoming files: its base URL."""
    app = web.Application()
    app.router.add_static("/files", pool / "incoming")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/files"
    finally:
        await runner.cleanup()


@pytest.fixture
async def importer(
    request: pytest.FixtureRequest, tmp_path: Path, base_image: Path, pool: Path
) -> AsyncIterator[StorageDriver]:
    if request.param == "qcow2":
        yield Qcow2Storage(tmp_path / "state", pools=[base_image.parent, pool])
    else:
        yield SimulatedStorage(
            images={str(base_image), str(pool / "incoming" / "disk.raw")},
            pools=[str(base_image.parent), str(pool)],
        )


both = pytest.mark.parametrize("importer", ["qcow2", "simulated"], indirect=True)


@both
async def test_an_image_is_imported_from_a_url_once(
    importer: StorageDriver, pool: Path, served: str
) -> None:
    source = ImageSource(url=f"{served}/disk.raw", format="raw", public_only=False)
    made = await importer.import_image("img-one", source=source, pool=str(pool))
    assert made.location == str(pool / "img-one.qcow2")
    assert made.format == "qcow2" and made.size_bytes > 0
    assert re.fullmatch(r"[0-9a-f]{64}", made.sha256)
    again = await importer.import_image("img-one", source=source, pool=str(pool))
    assert again == made


@both
async def test_an_image_is_imported_from_the_incoming_directory(
    importer: StorageDriver, pool: Path
) -> None:
    source = ImageSource(path=str(pool / "incoming" / "disk.raw"))
    made = await importer.import_image("img-two", source=source, pool=str(pool))
    assert made.location == str(pool / "img-two.qcow2")
    assert made.virtual_size_bytes > 0


@both
@pytest.mark.parametrize(
    "source",
    [
        ImageSource(url="file:///etc/passwd"),
        ImageSource(url="ftp://127.0.0.1/disk.raw"),
        ImageSource(url="http://127.0.0.1:9/disk.raw"),
        ImageSource(url="http://[::ffff:169.254.169.254]/latest/meta-data"),
        ImageSource(path="/etc/passwd"),
        ImageSource(path="{pool}/incoming/../../etc/passwd"),
        ImageSource(),
    ],
)
async def test_imports_from_elsewhere_are_refused(
    importer: StorageDriver, pool: Path, source: ImageSource
) -> None:
    if source.path is not None:
        source = ImageSource(path=source.path.replace("{pool}", str(pool)))
    with pytest.raises(StorageError):
        await importer.import_image("img-three", source=source, pool=str(pool))
    assert not (pool / "img-three.qcow2").exists()


@both
async def test_a_root_disk_is_exported_as_an_image(
    importer: StorageDriver, pool: Path, base_image: Path
) -> None:
    with pytest.raises(StorageError, match="i-seven"):
        await importer.export_image("i-seven", image_id="img-four", pool=str(pool))
    await importer.ensure_root_disk(
        "i-seven", image_location=str(base_image), image_format="qcow2", size_gb=1
    )
    made = await importer.export_image("i-seven", image_id="img-four", pool=str(pool))
    assert made.location == str(pool / "img-four.qcow2")
    assert made.virtual_size_bytes == 1024**3
    assert await importer.export_image("i-seven", image_id="img-four", pool=str(pool)) == made


async def test_qcow2_converts_a_downloaded_image_to_a_standalone_qcow2(
    tmp_path: Path, pool: Path, served: str
) -> None:
    storage = Qcow2Storage(tmp_path / "state", pools=[tmp_path / "images", tmp_path / "pool"])
    made = await storage.import_image(
        "img-five", source=ImageSource(url=f"{served}/disk.raw", public_only=False), pool=str(pool)
    )
    info = _qemu_info(made.location)
    assert info["format"] == "qcow2" and "backing-filename" not in info
    assert info["virtual-size"] == 2 * 1024**2 == made.virtual_size_bytes
    assert (made.size_bytes, made.sha256) == _measured(made.location)
    assert _listing(pool) == ["img-five.qcow2", "incoming"]
    with pytest.raises(StorageError, match=r"^image_source_http_error: HTTP 404$"):
        await storage.import_image(
            "img-six",
            source=ImageSource(url=f"{served}/absent.raw", public_only=False),
            pool=str(pool),
        )
    assert _listing(pool) == ["img-five.qcow2", "incoming"]


def _measured(path: str) -> tuple[int, str]:
    data = Path(path).read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


@pytest.fixture
def sneaky(tmp_path: Path, pool: Path) -> Path:
    """A qcow2 in the incoming directory backed by a host file it should not expose."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"host secret" * 100)
    overlay = pool / "incoming" / "sneaky.qcow2"
    subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(secret), "-F", "raw",
         str(overlay), "1M"],
        check=True,
    )  # fmt: skip
    return overlay


async def test_qcow2_refuses_a_source_with_a_backing_file(
    tmp_path: Path, pool: Path, served: str, sneaky: Path
) -> None:
    """A qcow2 backed by a host file would copy that file into the tenant's image."""
    storage = Qcow2Storage(tmp_path / "state", pools=[tmp_path / "images", tmp_path / "pool"])
    for source in (
        ImageSource(url=f"{served}/{sneaky.name}", public_only=False),
        ImageSource(url=f"{served}/{sneaky.name}", format="qcow2", public_only=False),
        ImageSource(path=str(sneaky)),
    ):
        with pytest.raises(StorageError, match="backing file"):
            await storage.import_image("img-seven", source=source, pool=str(pool))
    assert not (pool / "img-seven.qcow2").exists()


async def test_qcow2_exports_are_flattened(tmp_path: Path, pool: Path, base_image: Path) -> None:
    storage = Qcow2Storage(tmp_path / "state", pools=[tmp_path / "images", tmp_path / "pool"])
    await storage.ensure_root_disk(
        "i-eight", image_location=str(base_image), image_format="qcow2", size_gb=1
    )
    made = await storage.export_image("i-eight", image_id="img-eight", pool=str(pool))
    info = _qemu_info(made.location)
    assert info["format"] == "qcow2" and "backing-filename" not in info


@both
async def test_only_files_and_pools_of_the_host_s_own_pools_are_used(
    importer: StorageDriver, pool: Path, base_image: Path, tmp_path: Path
) -> None:
    assert await importer.image_file(str(base_image)) == str(base_image)
    for outside in ("/etc/shadow", f"{pool}/../secret", str(pool), "relative/file"):
        with pytest.raises(StorageError, match=r"^image_path_outside_pool: "):
            await importer.image_file(outside)
        with pytest.raises(StorageError, match=r"^image_path_outside_pool: "):
            await importer.ensure_root_disk(
                "i-out", image_location=outside, image_format="qcow2", size_gb=1
            )
    assert await importer.root_disk("i-out") is None
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = ImageSource(path=str(pool / "incoming" / "disk.raw"))
    with pytest.raises(StorageError, match=r"^image_path_outside_pool: "):
        await importer.import_image("img-out", source=source, pool=str(elsewhere))
    assert not list(elsewhere.iterdir())


async def test_qcow2_follows_symlinks_before_judging_a_path(
    tmp_path: Path, pool: Path, base_image: Path
) -> None:
    storage = Qcow2Storage(tmp_path / "state", pools=[pool])
    (pool / "to-base").symlink_to(base_image)  # in the pool, a file outside it
    with pytest.raises(StorageError, match=r"^image_path_outside_pool: "):
        await storage.image_file(str(pool / "to-base"))
    (pool / "inside.qcow2").symlink_to(pool / "incoming" / "disk.raw")
    assert await storage.image_file(str(pool / "inside.qcow2")) == str(
        pool / "incoming" / "disk.raw"
    )
