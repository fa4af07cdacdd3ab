"""One contract for every storage driver: qcow2 overlays through qemu-img and the simulated one."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hostd.storage.port import StorageDriver, StorageError
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
        yield Qcow2Storage(tmp_path / "state")
    else:
        yield SimulatedStorage(images={str(base_image)})


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
    storage = Qcow2Storage(tmp_path / "state")
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
    storage = Qcow2Storage(tmp_path / "state")
    with pytest.raises(StorageError):
        await storage.delete_root_disk("../etc/passwd")
