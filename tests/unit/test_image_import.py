"""The Image aggregate's import step: one report ends it, stale ones are ignored, a deadline
ends one that never reports."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain import clock
from domain.compute.image import (
    AVAILABLE,
    ERROR,
    IMPORTING,
    MAX_UPLOAD_BYTES,
    UPLOADING,
    Image,
    ImagePathOutsidePool,
    ImageUploadMismatch,
    check_pool_file,
)
from domain.errors import InvalidState, ValidationFailed


def importing() -> Image:
    image = Image(
        tenant_id="tnt-1",
        name="imported",
        region_id="rgn-1",
        pool_id="imp-1",
        location="",
        disk_format="qcow2",
        architecture="x86_64",
        os_family="linux",
        min_disk_gb=1,
        kernel=None,
        initrd=None,
        cmdline=None,
        status=IMPORTING,
        source={"url": "https://93.184.216.34/a.qcow2"},
    )
    image.start_import("hst-1", "stp-1")
    return image


def report(image: Image, step_id: str, error: str | None = None) -> bool:
    return image.host_reported(
        step_id,
        location="/pool/a.qcow2",
        size_bytes=10,
        virtual_size_bytes=1024,
        checksum="0" * 64,
        error=error,
    )


def test_an_import_is_usable_only_once_its_host_reports_it() -> None:
    image = importing()
    assert not image.usable_by("tnt-1")
    assert not report(image, "stp-other")
    assert report(image, "stp-1")
    assert image.status == AVAILABLE and image.location == "/pool/a.qcow2"
    assert image.usable_by("tnt-1") and image.view()["checksum"] == "0" * 64
    assert not report(image, "stp-1", "late failure")  # a repeat changes nothing
    assert image.status == AVAILABLE


def test_a_failed_import_keeps_its_cause() -> None:
    image = importing()
    assert report(image, "stp-1", "GET https://…: HTTP 404")
    assert image.status == ERROR and image.view()["error"] == "GET https://…: HTTP 404"
    assert not image.usable_by("tnt-1")


def test_an_import_that_never_reports_times_out() -> None:
    image = importing()
    assert image.deadline is not None
    assert not image.time_out(image.deadline - timedelta(seconds=1))
    assert image.time_out(clock.now() + timedelta(hours=1))
    assert image.status == ERROR and "did not finish" in (image.error or "")
    assert not report(image, "stp-1")


def test_a_deleted_import_ignores_its_report() -> None:
    image = importing()
    image.delete()
    assert not report(image, "stp-1")
    assert image.view()["status"] == "deleted"


# -- uploads and the files a registration may name -------------------------------------


def uploading(size: int = 10, sha256: str = "ab" * 32) -> Image:
    return Image.for_upload(
        "tnt-1",
        "mine",
        "rgn-1",
        "imp-1",
        size_bytes=size,
        sha256=sha256,
        source_format=None,
        architecture="x86_64",
        os_family="linux",
        min_disk_gb=1,
    )


def test_an_upload_of_the_declared_bytes_starts_the_import() -> None:
    image = uploading(sha256="AB" * 32)
    assert image.status == UPLOADING and image.expected_upload == (10, "ab" * 32)
    for size, digest in ((11, "ab" * 32), (10, "cd" * 32)):
        with pytest.raises(ImageUploadMismatch):
            image.upload_received(size, digest, "hst-1", "stp-1")
    assert image.status == UPLOADING
    image.upload_received(10, "AB" * 32, "hst-1", "stp-1")
    assert image.status == IMPORTING and image.step_id == "stp-1"
    assert image.expected_upload is None
    with pytest.raises(InvalidState):
        image.upload_received(10, "ab" * 32, "hst-1", "stp-2")
    assert [type(e).__name__ for e in image.collect_events()] == [
        "Created",
        "Uploaded",
        "ImportStarted",
    ]


def test_an_upload_never_sent_ends_in_error_at_its_deadline() -> None:
    image = uploading()
    assert not image.time_out(clock.now())
    assert image.time_out(clock.now() + timedelta(hours=2))
    assert image.status == ERROR and image.error is not None and "upload" in image.error


@pytest.mark.parametrize("size", [0, -1, MAX_UPLOAD_BYTES + 1])
def test_an_upload_has_a_size_within_the_limit(size: int) -> None:
    with pytest.raises(ValidationFailed):
        uploading(size=size)


@pytest.mark.parametrize(
    ("backend", "path", "inside"),
    [
        ("qcow2", "/pool/images/a.qcow2", True),
        ("qcow2", "/pool/images/sub/a.qcow2", True),
        ("qcow2", "/pool/images", False),
        ("qcow2", "/pool/images/", False),
        ("qcow2", "/pool/images/../a", False),
        ("qcow2", "/pool/images/./a", False),
        ("qcow2", "/pool/images-b/a", False),
        ("qcow2", "/etc/shadow", False),
        ("qcow2", "a.qcow2", False),
        ("rbd", "images/a", True),
        ("rbd", "other/a", False),
        ("rbd", "images/../a", False),
        ("rbd", "images/a/b", False),
    ],
)
def test_registered_files_lie_inside_their_pool(backend: str, path: str, inside: bool) -> None:
    location = "images" if backend == "rbd" else "/pool/images"
    if inside:
        assert check_pool_file(backend, location, path, "location") == path
    else:
        with pytest.raises(ImagePathOutsidePool):
            check_pool_file(backend, location, path, "location")


def test_a_ceph_pool_holds_no_kernel() -> None:
    with pytest.raises(ImagePathOutsidePool):
        check_pool_file("rbd", "images", "images/vmlinuz", "kernel")
