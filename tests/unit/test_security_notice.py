"""A notice is tried a bounded number of times, then given up."""

from __future__ import annotations

from domain.identity.security_notice import FAILED, MAX_ATTEMPTS, QUEUED, SENT, SecurityNotice


def test_a_notice_is_given_up_after_its_last_attempt() -> None:
    notice = SecurityNotice("usr-x", "tnt-x", "a@x.example", "subject", "text")
    for _ in range(MAX_ATTEMPTS - 1):
        notice.failed("connection refused")
        assert notice.status == QUEUED
    notice.failed("connection refused")
    assert (notice.status, notice.attempts, notice.last_error) == (
        FAILED,
        MAX_ATTEMPTS,
        "connection refused",
    )


def test_a_sent_notice_says_so() -> None:
    notice = SecurityNotice(None, "tnt-x", "a@x.example", "subject", "text")
    notice.sent()
    assert notice.view()["status"] == SENT
