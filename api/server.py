"""The HTTP server around the app: what it answers to a request it cannot even parse.

aiohttp answers an over-long request line, an over-long header or malformed HTTP itself,
before any middleware runs: a plain-text 400 that echoes part of the request back, and a
logged traceback. It has no hook for that answer (aio-libs/aiohttp#3287), so the server
here builds its connections with ``handle_error`` replaced: problem+json, 414 or 431 where
RFC 9110 and RFC 6585 have a status for it, nothing of the request echoed, one log line.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler

from api.problems import REQUEST_ID_HEADER, new_request_id, problem

log = logging.getLogger(__name__)

MAX_REQUEST_LINE = 8192
MAX_HEADER_FIELD = 8190
"""aiohttp's own limit. The two differ on purpose: a ``LineTooLong`` says which part was too
long only by the limit it names."""
MAX_HEADERS = 128
_TOO_MANY_HEADERS = "Too many headers received"


class ApiRunner(web.AppRunner):
    """An ``AppRunner`` whose server answers unparseable requests as problem+json."""

    def __init__(self, app: web.Application, **kwargs: Any) -> None:
        kwargs.setdefault("max_line_size", MAX_REQUEST_LINE)
        kwargs.setdefault("max_field_size", MAX_HEADER_FIELD)
        kwargs.setdefault("max_headers", MAX_HEADERS)
        super().__init__(app, **kwargs)

    async def _make_server(self) -> web.Server:
        made = await super()._make_server()
        return _Server(
            made.request_handler,
            request_factory=made.request_factory,
            handler_cancellation=made.handler_cancellation,
            loop=made._loop,
            **made._kwargs,
        )


class _Server(web.Server):
    def __call__(self) -> RequestHandler:
        return _Connection(self, loop=self._loop, **self._kwargs)


class _Connection(RequestHandler):
    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        request_id = new_request_id()  # the request never reached the middleware
        if not isinstance(exc, HttpProcessingError):
            # A fault past the middleware (it answers every other one): aiohttp logs it.
            super().handle_error(request, status, exc, message)
            answer = problem(
                status,
                "internal_error",
                "Internal Server Error",
                "it was logged",
                request_id=request_id,
            )
        else:
            if request.writer.output_size > 0:
                raise ConnectionError("an answer was already under way")
            status, title, detail = refusal(exc)
            code = title.lower().replace(" ", "_")
            # No part of the request is written back or logged: it is the sender's text.
            log.info("refused a request from %s: %d %s", request.remote, status, code)
            answer = problem(status, code, title, detail, request_id=request_id)
        answer.headers[REQUEST_ID_HEADER] = request_id
        answer.force_close()
        return answer


def refusal(error: HttpProcessingError) -> tuple[int, str, str]:
    """The status, title and detail for a request aiohttp could not parse."""
    if isinstance(error, LineTooLong):
        limit = error.args[1] if len(error.args) > 1 else None
        if limit == MAX_REQUEST_LINE:
            return 414, "URI Too Long", f"the request line is over {MAX_REQUEST_LINE} bytes"
        return 431, "Request Header Fields Too Large", f"a header is over {MAX_HEADER_FIELD} bytes"
    if error.message == _TOO_MANY_HEADERS:  # aiohttp has no type of its own for it
        return 431, "Request Header Fields Too Large", f"more than {MAX_HEADERS} headers"
    return 400, "Bad Request", "the request is not well-formed HTTP/1.1"
