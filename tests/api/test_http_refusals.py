"""Requests the HTTP parser refuses: problem+json with their own status, nothing echoed.

Sent as raw bytes over a socket to the API's own server (``api.server.ApiRunner``, which
the test client runs too), since no HTTP client sends them.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from api.server import MAX_HEADER_FIELD, MAX_HEADERS, MAX_REQUEST_LINE
from tests.api.conftest import Api

MARK = b"echo-me-not"


async def _raw(api: Api, request: bytes) -> tuple[int, dict[str, str], bytes]:
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)  # the server closes after it
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, body


def _get(target: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: localhost\r\n" + headers + b"\r\n"


CASES = [
    pytest.param(
        _get(b"/v1/projects?" + MARK * (MAX_REQUEST_LINE // len(MARK) + 1)),
        414,
        "uri_too_long",
        id="request-line",
    ),
    pytest.param(
        _get(b"/v1/me", b"X-Long: " + MARK * (MAX_HEADER_FIELD // len(MARK) + 1) + b"\r\n"),
        431,
        "request_header_fields_too_large",
        id="header-value",
    ),
    pytest.param(
        _get(b"/v1/me", b"X-" + MARK * (MAX_HEADER_FIELD // len(MARK) + 1) + b": 1\r\n"),
        431,
        "request_header_fields_too_large",
        id="header-name",
    ),
    pytest.param(
        _get(b"/v1/me", b"".join(b"X-%d-%s: 1\r\n" % (i, MARK) for i in range(MAX_HEADERS + 1))),
        431,
        "request_header_fields_too_large",
        id="too-many-headers",
    ),
    pytest.param(b"G\x01T /v1/" + MARK + b" HTTP/1.1\r\n\r\n", 400, "bad_request", id="garbage"),
]


@pytest.mark.parametrize(("request_bytes", "status", "code"), CASES)
async def test_an_unparseable_request_is_answered_as_problem_json_and_logged_once(
    api: Api, caplog: pytest.LogCaptureFixture, request_bytes: bytes, status: int, code: str
) -> None:
    caplog.set_level(logging.DEBUG)
    answered, headers, body = await _raw(api, request_bytes)
    assert answered == status, body
    assert headers["content-type"] == "application/problem+json"
    assert MARK not in body
    problem = json.loads(body)
    assert problem["status"] == status and problem["code"] == code
    assert problem["request_id"] == headers["x-request-id"]
    assert not any(MARK.decode() in r.getMessage() for r in caplog.records)
    # one line (the test server's access log, off in production, aside); no traceback
    logged = [
        r
        for r in caplog.records
        if r.name.startswith(("aiohttp", "api.server")) and r.name != "aiohttp.access"
    ]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    record = logged[0]
    assert record.name == "api.server" and record.exc_info is None
    assert "\n" not in record.getMessage() and MARK.decode() not in record.getMessage()
    assert f"{status} {code}" in record.getMessage()
    # the server still answers the next request
    fine, _, _ = await _raw(api, _get(b"/v1/openapi.json", b"Connection: close\r\n"))
    assert fine == 200
