"""The route table: every endpoint declared once with its permission and its types.

The OpenAPI document, the request decoding and the tenant-isolation tests are all
generated from this table, so an endpoint cannot be added without being covered.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web

from api.auth import Unauthenticated, authenticate
from api.json_input import check_depth, check_unique_keys, is_utf8_json
from api.state import PLATFORM
from api.times import AS_OF, parse_time, time_fields
from domain.errors import NotFound, ValidationFailed
from domain.identity.permissions import decide, refusal_kind
from domain.ids import is_id

if TYPE_CHECKING:
    from api.call import Call

Handler = Callable[["Call"], Awaitable[web.StreamResponse]]
_INTEGER = re.compile(r"-?[0-9]+")
NUL = "\x00"
NO_NUL = "text may not contain U+0000"
"""PostgreSQL cannot store it in text or jsonb, so no read model could ever show it."""


REFUSALS = ("invalid body:", "invalid query:", "invalid header:")
"""How every refusal of the decoding below begins: the request does not fit the declared types.

A request the OpenAPI document allows must never get one (the Schemathesis test checks it);
refusals a handler or the domain decides on say something else.
"""


JSON = "application/json"
MIN_POSITION = "min_position"


class UnsupportedMediaType(ValidationFailed):
    code = "unsupported_media_type"
    status = 415


class UnknownParameter(ValidationFailed):
    code = "unknown_parameter"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    action: str | None
    """The permission it needs. None only for a ``public`` endpoint (no caller at all); what
    every signed-in user may do still names a ``self:`` action, which a narrow key lacks."""
    public: bool = False
    body: type[msgspec.Struct] | None = None
    query: type[msgspec.Struct] | None = None
    response: Any = None
    status: int = 200
    kind: str | None = None
    """Id prefix of the ``{id}`` in the path: what the isolation tests aim at."""
    tags: tuple[str, ...] = ()
    media_type: str | tuple[str, ...] = JSON
    """What a successful answer carries: one media type, or each one it can carry."""
    upload: str | None = None
    """The media type of a body the handler streams itself (never decoded here)."""

    @property
    def mutation(self) -> bool:
        return self.method in {"POST", "PUT", "PATCH", "DELETE"}

    @property
    def media_types(self) -> tuple[str, ...]:
        return (self.media_type,) if isinstance(self.media_type, str) else self.media_type

    @property
    def is_page(self) -> bool:
        fields = getattr(self.response, "__struct_fields__", ())
        return {"items", "next_page_token"} <= set(fields)

    @property
    def reads_own_resource(self) -> bool:
        """``GET /v1/tenant``, ``GET /v1/quotas``: one resource of the caller's (staff lack it)."""
        return (
            self.method == "GET"
            and self.action is not None
            and not self.public
            and not self.is_page
        )

    @property
    def reads_model(self) -> bool:
        """Reads the read model, so honours ``min_position`` (422 when bad, 503 when late)."""
        if self.method != "GET" or self.public:
            return False
        if self.query is not None and MIN_POSITION in self.query.__struct_encode_fields__:
            return True
        return self.reads_own_resource

    @property
    def takes_as_of(self) -> bool:
        """A read of one resource by its id answers it as it was at ``as_of`` (time travel)."""
        return (
            self.method == "GET" and self.path.endswith("/{id}") and self.kind not in (None, "op")
        )

    @property
    def query_names(self) -> frozenset[str]:
        """Every query parameter it takes: those the document lists, and ``min_position``."""
        names = set(self.query.__struct_encode_fields__ if self.query is not None else ())
        # Like its header, the position may come with any call: the document lists it where
        # it makes a read wait; elsewhere it is checked (an integer) and changes nothing.
        names.add(MIN_POSITION)
        if self.takes_as_of:
            names.add(AS_OF)
        return frozenset(names)


@dataclass
class Router:
    endpoints: list[Endpoint] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        action: str | None,
        public: bool = False,
        body: type[msgspec.Struct] | None = None,
        query: type[msgspec.Struct] | None = None,
        response: Any = None,
        status: int = 200,
        kind: str | None = None,
        tags: tuple[str, ...] = (),
        media_type: str | tuple[str, ...] = JSON,
        upload: str | None = None,
    ) -> Callable[[Handler], Handler]:
        if action is None and not public:
            raise TypeError(f"{method} {path}: an endpoint with callers declares their action")

        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method,
                    path,
                    handler,
                    summary,
                    action,
                    public,
                    body,
                    query,
                    response,
                    status,
                    kind,
                    tags,
                    media_type,
                    upload,
                )
            )
            return handler

        return register

    def install(self, app: web.Application) -> None:
        for endpoint in self.endpoints:
            app.router.add_route(endpoint.method, endpoint.path, _wrap(endpoint))


def _wrap(endpoint: Endpoint) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    from api.call import Call

    known = endpoint.query_names

    async def handle(request: web.Request) -> web.StreamResponse:
        platform = request.app[PLATFORM]
        call = Call(request, platform, endpoint)
        if not endpoint.public:
            try:
                call.principal = authenticate(
                    request.headers.get("Authorization"), platform.tokens, platform.identity
                )
            except Unauthenticated as error:
                await call.audit_denial(error)
                raise
            if call.principal.tenant_id is not None:
                platform.tenant_rate.hit(call.principal.tenant_id)
            if endpoint.action is not None:
                reason = decide(call.principal, endpoint.action)
                if reason is not None:
                    refused = refusal_kind(reason)
                    await call.audit_denial(refused(f"{endpoint.action}: {reason}"))
                    raise refused(f"not allowed: {reason}", action=endpoint.action)
        _check_query_names(known, request)
        _check_path_id(endpoint, request)
        _check_positions(request)
        if endpoint.query is not None:
            call.query = _convert(endpoint.query, dict(request.query), "query")
        if endpoint.body is not None:
            call.body = await _decode_body(request, endpoint.body)
        return await endpoint.handler(call)

    return handle


def _check_path_id(endpoint: Endpoint, request: web.Request) -> None:
    """A malformed ``{id}`` names nothing: 404 before it reaches a query or an aggregate."""
    given = request.match_info.get("id")
    if endpoint.kind is not None and given is not None and not is_id(given, endpoint.kind):
        raise NotFound(f"{given[:100]!r} is not a {endpoint.kind}- id")


def _check_query_names(known: frozenset[str], request: web.Request) -> None:
    """A parameter the endpoint does not take is refused: a mistyped filter would filter nothing."""
    unknown = sorted(set(request.query) - known)
    if unknown:
        names = ", ".join(repr(name[:100]) for name in unknown[:5])
        takes = ", ".join(sorted(known)) or "none"
        raise UnknownParameter(
            f"invalid query: unknown parameter {names} (this endpoint takes: {takes})",
            parameters=unknown[:5],
        )


def _check_positions(request: web.Request) -> None:
    """The read-your-writes position, by query or header, is an integer wherever it is given."""
    from api.call import MIN_POSITION_HEADER

    query, header = request.query.get("min_position"), request.headers.get(MIN_POSITION_HEADER)
    if query is not None and not _INTEGER.fullmatch(query):
        raise ValidationFailed("invalid query: min_position must be an integer")
    if header is not None and not _INTEGER.fullmatch(header):
        raise ValidationFailed(f"invalid header: {MIN_POSITION_HEADER} must be an integer")


def _convert(kind: type[msgspec.Struct], values: dict[str, str], where: str) -> Any:
    if any(NUL in name or NUL in value for name, value in values.items()):
        raise ValidationFailed(f"invalid {where}: {NO_NUL}")
    # Times are read by the one parser every time parameter shares; the lax conversion
    # below would also take epoch seconds and times without an offset.
    given: dict[str, Any] = dict(values)
    for name in time_fields(kind) & given.keys():
        given[name] = parse_time(name, values[name], where)
    try:
        return msgspec.convert(given, kind, strict=False)
    except msgspec.ValidationError as error:
        raise ValidationFailed(f"invalid {where}: {error}") from None


async def _decode_body(request: web.Request, kind: type[msgspec.Struct]) -> Any:
    # No body at all (an action whose options all have defaults) reads as ``{}``.
    empty = not request.body_exists
    if not empty and request.content_type not in (JSON, "application/merge-patch+json"):
        raise UnsupportedMediaType("invalid header: send the body as application/json")
    raw = b"{}" if empty else (await request.read() or b"{}")
    if not is_utf8_json(None if empty else request.charset, raw):
        raise UnsupportedMediaType("invalid header: send the body as UTF-8 JSON")
    check_depth(raw)
    try:
        body = msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as error:
        body = _with_integral_floats(raw, kind, error)
    except msgspec.DecodeError:
        raise ValidationFailed("invalid body: not valid JSON") from None
    # Only a body that fits its type is read again: a large hostile one is refused above.
    check_unique_keys(raw)
    # JSON can carry U+0000 only as an escape: look closer only when one is there.
    if b"\\u0000" in raw and _holds_nul(msgspec.to_builtins(body)):
        raise ValidationFailed(f"invalid body: {NO_NUL}")
    return body


def _with_integral_floats(raw: bytes, kind: type[msgspec.Struct], error: Exception) -> Any:
    """Decode again reading ``5.0`` as ``5``: JSON Schema's integers include it, msgspec's not."""
    try:
        return msgspec.convert(_integral(msgspec.json.decode(raw)), kind)
    except msgspec.ValidationError:  # a DecodeError too: it goes first
        raise ValidationFailed(f"invalid body: {error}") from None
    except msgspec.DecodeError:
        raise ValidationFailed("invalid body: not valid JSON") from None


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(item) for item in value]
    return value


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    return False
