"""The Image aggregate's import step: one report ends it, stale ones are ignored, a deadline
ends one that never reports."""

from __future__ import annotations

from datetime import timedelta

from domain import clock
from domain.compute.image import AVAILABLE, ERROR, IMPORTING, Image


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
