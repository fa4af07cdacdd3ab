"""The OpenAPI 3.1 document, generated from the route table and the handlers' own types.

Nothing here is written by hand per endpoint: the paths, parameters, bodies, answers and
the errors each endpoint can give all follow from its ``Endpoint`` declaration, so a new
endpoint is documented (and fuzzed by the Schemathesis test) the moment it is declared.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from api.call import MIN_POSITION_HEADER, POSITION_HEADER
from api.json_input import MAX_DEPTH
from api.routing import JSON, Endpoint
from api.times import AS_OF
from api.type_schemas import REF, component_schemas, query_fields, schema_of

PROBLEM_JSON = "application/problem+json"
ID_BODY = "[0-9a-hjkmnp-tv-z]{26}"
"""The Crockford base32 body of every id (see ``domain.ids``)."""
_PATH_PARAM = re.compile(r"{(\w+)}")
_BINARY = frozenset({"application/pdf"})

_ERRORS = {
    400: ("BadRequest", "A business rule refused the command"),
    401: ("Unauthorized", "No credentials, or they are invalid, expired or revoked"),
    403: ("Forbidden", "Not allowed: a missing permission, a frozen tenant or a spent quota"),
    404: ("NotFound", "No such resource, or it belongs to someone else"),
    409: ("Conflict", "A conflicting change, or this Idempotency-Key's request still runs"),
    412: ("PreconditionFailed", "If-Match names another version than the resource has"),
    413: ("ContentTooLarge", "The body is larger than the API accepts"),
    415: ("UnsupportedMediaType", "The body is not UTF-8 application/json"),
    422: (
        "Unprocessable",
        "Malformed or unknown parameters; a malformed body (JSON nested deeper than "
        f"{MAX_DEPTH} levels, a key twice in one object); or a reused Idempotency-Key",
    ),
    429: (
        "TooManyRequests",
        "Too many failed sign-ins, requests of one tenant, or builds behind: see Retry-After",
    ),
    503: (
        "NotYetVisible",
        "Reads have not reached the requested position yet (not_yet_visible), or the event "
        "store cannot be reached (store_unavailable, with Retry-After); retry shortly",
    ),
}
_POSITION = {"type": "integer"}
"""Any integer; one not reached yet waits (bounded), then answers 503."""
_HEADERS = {
    "RequestId": {
        "name": "X-Request-Id",
        "in": "header",
        "required": False,
        "description": "Echoed back and recorded on every event the request causes",
        "schema": {"type": "string"},
    },
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "The same key and request again answers the first result",
        "schema": {"type": "string", "maxLength": 200},
    },
    "IfMatch": {
        "name": "If-Match",
        "in": "header",
        "required": False,
        "description": "The ETag read earlier; 412 if the resource changed since",
        "schema": {"type": "string", "pattern": '^(W/)?"?[0-9]+"?$'},
    },
    "MinPosition": {
        "name": MIN_POSITION_HEADER,
        "in": "header",
        "required": False,
        "description": "Wait (bounded) until reads include this position",
        "schema": _POSITION,
    },
}


def build_document(endpoints: Sequence[Endpoint], *, version: str = "1") -> dict[str, Any]:
    """The whole document for ``endpoints``."""
    schemas = component_schemas(endpoints)
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(
            endpoint, endpoints
        )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SCloudStack API",
            "version": version,
            "description": (
                "Every mutation answers 202 with an operation to follow (Location: "
                "/v1/operations/{id}) and the position it wrote; pass that position as "
                "min_position to read your own writes. Errors are RFC 9457 problem+json "
                "with a stable code and the request id."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": tag} for tag in sorted({t for e in endpoints for t in e.tags})],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "parameters": _HEADERS,
            "responses": {name: _problem(text) for name, text in _ERRORS.values()},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A session token (st1.…) from POST /v1/auth/login, or an API key "
                        "(sk.<key id>.<secret>) from POST /v1/api-keys."
                    ),
                }
            },
        },
    }


def operation_id(endpoint: Endpoint) -> str:
    return endpoint.handler.__name__


# -- what an endpoint can answer ---------------------------------------------------------


def is_page(endpoint: Endpoint) -> bool:
    return endpoint.is_page


def reads_model(endpoint: Endpoint) -> bool:
    """Reads the resource documents, so honours ``min_position`` (422 when bad, 503 when late)."""
    return endpoint.reads_model


def takes_if_match(endpoint: Endpoint) -> bool:
    return endpoint.mutation and endpoint.kind is not None


def error_statuses(endpoint: Endpoint) -> list[int]:
    errors: set[int] = set()
    if not (endpoint.public and endpoint.method == "GET"):
        errors.add(401)  # a bad credential, or (signing in) a wrong password
    if endpoint.action is not None:
        errors.add(403)
    if _PATH_PARAM.search(endpoint.path) or endpoint.reads_own_resource:
        errors.add(404)
    errors.add(422)  # a query parameter it does not take, if nothing else
    if endpoint.body is not None or endpoint.upload is not None:
        errors |= {413, 415, 422}
    if endpoint.mutation:
        errors |= {409, 422}  # Idempotency-Key still running / reused; conflicts
        if not endpoint.public:
            errors |= {400, 403, 404}  # what the command's decision may refuse
    if endpoint.public and endpoint.mutation:
        errors.add(429)  # signing in: failed attempts are limited per account and per source
    if takes_if_match(endpoint):
        errors.add(412)
    if reads_model(endpoint):
        errors |= {422, 503}
    if not endpoint.public or endpoint.mutation:
        errors.add(503)  # it reads or writes the store: store_unavailable when it is away
    return sorted(errors)


# -- one operation -----------------------------------------------------------------------


def _operation(endpoint: Endpoint, endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id(endpoint),
        "summary": endpoint.summary,
        "tags": list(endpoint.tags),
        "parameters": _parameters(endpoint),
    }
    if endpoint.action is not None:
        operation["description"] = f"Needs the permission `{endpoint.action}`."
    if endpoint.public:
        operation["security"] = []
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schema_of(endpoint.body)}},
        }
    if endpoint.upload is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {endpoint.upload: {"schema": {"type": "string", "format": "binary"}}},
        }
    responses: dict[str, Any] = {str(endpoint.status): _success(endpoint, endpoints)}
    for status in error_statuses(endpoint):
        responses[str(status)] = {"$ref": f"#/components/responses/{_ERRORS[status][0]}"}
    operation["responses"] = responses
    return operation


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": _header("The request id", required=True)},
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(name="Problem")}}},
    }


def _use(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/parameters/{name}"}


def _parameters(endpoint: Endpoint) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    for name in _PATH_PARAM.findall(endpoint.path):
        schema: dict[str, Any] = {"type": "string"}
        if name == "id" and endpoint.kind is not None:
            schema["pattern"] = f"^{endpoint.kind}-{ID_BODY}$"
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    query_names: set[str] = set()
    if endpoint.query is not None:
        for name, schema, required in query_fields(endpoint.query):
            query_names.add(name)
            parameters.append({"name": name, "in": "query", "required": required, "schema": schema})
    if reads_model(endpoint):
        if "min_position" not in query_names:
            parameters.append(
                {"name": "min_position", "in": "query", "required": False, "schema": _POSITION}
            )
        parameters.append(_use("MinPosition"))
    if endpoint.takes_as_of and AS_OF not in query_names:  # unless its query struct has it
        parameters.append(
            {
                "name": AS_OF,
                "in": "query",
                "required": False,
                "description": (
                    "Answer with the resource as it was at this time (time travel): "
                    "RFC 3339 with an offset"
                ),
                "schema": {"type": "string", "format": "date-time"},
            }
        )
    if endpoint.mutation:
        parameters.append(_use("IdempotencyKey"))
    if takes_if_match(endpoint):
        parameters.append(_use("IfMatch"))
    parameters.append(_use("RequestId"))
    return parameters


def _success(endpoint: Endpoint, endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    headers = {"X-Request-Id": _header("The request id (the caller's, or a new one)", True)}
    if endpoint.status == 202:
        headers["Location"] = _header("The operation to follow: /v1/operations/{id}", True)
        headers[POSITION_HEADER] = _header(
            "The position written; pass it as min_position to read your own writes",
            True,
            {"type": "string", "pattern": "^[0-9]+$"},
        )
        headers["Idempotent-Replayed"] = _header(
            "true when this answers an earlier request with the same Idempotency-Key", False
        )
    if endpoint.method == "GET" and endpoint.kind is not None:
        headers["ETag"] = _header("The resource's version; send it back as If-Match", False)
    if is_page(endpoint):
        headers["Link"] = _header('The next page: <…>; rel="next"', False)
    response: dict[str, Any] = {
        "description": endpoint.summary,
        "headers": headers,
        "content": {media: _content(endpoint, media) for media in endpoint.media_types},
    }
    links = _links(endpoint, endpoints)
    if links:
        response["links"] = links
    return response


def _content(endpoint: Endpoint, media: str) -> dict[str, Any]:
    if media == JSON and endpoint.response is not None:
        return {"schema": schema_of(endpoint.response)}
    if media in _BINARY:  # bytes, not text: OpenAPI 3.1 names their media type
        return {"schema": {"type": "string", "contentMediaType": media}}
    return {"schema": {"type": "string"}}  # a stream, a page, an export: text of that type


def _header(
    description: str, required: bool, schema: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": schema or {"type": "string"},
    }


def _links(endpoint: Endpoint, endpoints: Sequence[Endpoint]) -> dict[str, Any]:
    """From a mutation's answer to its operation, and from a create to what it made."""
    fields = set(getattr(endpoint.response, "__struct_fields__", ()))
    if endpoint.status != 202 or not {"operation_id", "resource_id", "position"} <= fields:
        return {}
    read_after = {"min_position": "$response.body#/position"}
    links: dict[str, Any] = {}
    creates = not _PATH_PARAM.search(endpoint.path) and endpoint.method == "POST"
    for other in endpoints:
        if other.kind == "op" and other.method == "GET":
            links["Operation"] = {
                "operationId": operation_id(other),
                "parameters": {"path.id": "$response.body#/operation_id"},
            }
        elif creates and other.path.startswith(f"{endpoint.path}/{{id}}") and other.kind:
            parameters = {"path.id": "$response.body#/resource_id"}
            if reads_model(other):
                parameters |= {f"query.{k}": v for k, v in read_after.items()}
            links[_link_name(other)] = {
                "operationId": operation_id(other),
                "parameters": parameters,
            }
    return links


def _link_name(endpoint: Endpoint) -> str:
    return "".join(part.title() for part in operation_id(endpoint).split("_"))
