"""RFC 9457 problem+json for every error, with a stable ``code`` and the request id."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web

from domain.errors import DomainError
from gateways.eventstore.unavailable import store_unavailable

log = logging.getLogger(__name__)

REQUEST_ID = web.RequestKey("request_id", str)
_encoder = msgspec.json.Encoder()
REQUEST_ID_HEADER = "X-Request-Id"
STORE_RETRY_AFTER_SECONDS = 2
"""What a caller is told to wait when PostgreSQL is away: a restart or failover is seconds."""


class Problem(msgspec.Struct, omit_defaults=True):
    type: str
    title: str
    status: int
    code: str
    detail: str | None = None
    instance: str | None = None
    request_id: str | None = None
    field: str | None = None
    """The request's field the problem is about, when it is about one (a body's reference
    that names nothing the caller may use, a name with a refused character)."""


PROBLEM_JSON = "application/problem+json"


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    request_id: str | None = None,
    field: str | None = None,
) -> web.Response:
    body = Problem(
        type=f"https://docs.scloudstack.dev/problems/{code}",
        title=title,
        status=status,
        code=code,
        detail=detail,
        instance=instance,
        request_id=request_id,
        field=field,
    )
    return web.Response(status=status, body=_encoder.encode(body), content_type=PROBLEM_JSON)


def problem_response(
    request: web.Request,
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    field: str | None = None,
) -> web.Response:
    return problem(
        status,
        code,
        title,
        detail,
        instance=request.path,
        request_id=request.get(REQUEST_ID),
        field=field,
    )


def new_request_id() -> str:
    return f"req-{uuid.uuid4().hex}"


def _request_id(request: web.Request) -> str:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    # Accept the caller's id when it is printable and short; otherwise mint one.
    if 0 < len(given) <= 128 and given.isprintable():
        return given
    return new_request_id()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def problems_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request[REQUEST_ID] = _request_id(request)
    try:
        response = await handler(request)
    except DomainError as error:
        field = error.context.get("field")
        response = problem_response(
            request,
            error.status,
            error.code,
            type(error).__name__,
            error.detail,
            field if isinstance(field, str) else None,
        )
        retry_after = error.context.get("retry_after")
        if isinstance(retry_after, int):
            response.headers["Retry-After"] = str(retry_after)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = error.reason.lower().replace(" ", "_")
        response = problem_response(request, error.status, code, error.reason, error.text)
        if "Allow" in error.headers:  # a 405 must say which methods the path has (RFC 9110)
            response.headers["Allow"] = error.headers["Allow"]
    except Exception as error:
        if not store_unavailable(error):
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = problem_response(
                request, 500, "internal_error", "Internal Server Error", "the error was logged"
            )
        else:
            # The caller is not at fault and nothing of ours is broken: one line, no trace.
            log.warning("store unavailable on %s %s: %s", request.method, request.path, error)
            response = problem_response(
                request,
                503,
                "store_unavailable",
                "Service Unavailable",
                "the event store cannot be reached; retry shortly",
            )
            response.headers["Retry-After"] = str(STORE_RETRY_AFTER_SECONDS)
    response.headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    return response
