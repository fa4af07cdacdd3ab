"""What the API accepts as a request, the same way on every endpoint.

Unknown query parameters, time parameters, JSON bodies (depth, duplicate keys, encoding):
each is checked by walking the route table, so a new endpoint is covered without editing
this file.
"""

from __future__ import annotations

import re
from typing import Any

from api.app import endpoints
from api.json_input import MAX_DEPTH
from api.openapi import build_document
from api.routing import Endpoint
from api.times import AS_OF, time_fields
from domain.ids import new_id
from tests.api.conftest import Api, Caller

_PARAM = re.compile(r"{(\w+)}")
BOGUS = "bogus_filter"


def _path(endpoint: Endpoint) -> str:
    """The endpoint's path with every parameter filled by a well-formed value."""

    def fill(match: re.Match[str]) -> str:
        if match.group(1) == "id" and endpoint.kind is not None:
            return new_id(endpoint.kind)
        return "2027-03" if match.group(1) == "period" else "x"

    return _PARAM.sub(fill, endpoint.path)


async def _send(caller: Caller, endpoint: Endpoint, path: str, **kwargs: Any) -> Any:
    return await caller.client.request(
        endpoint.method, path, headers=caller.headers(kwargs.pop("headers", None)), **kwargs
    )


async def test_every_endpoint_refuses_a_query_parameter_it_does_not_take(api: Api) -> None:
    owner = await api.tenant()
    missed = []
    for endpoint in endpoints():
        answers = []
        for caller in (api.admin, owner):
            response = await _send(caller, endpoint, f"{_path(endpoint)}?{BOGUS}=1&limit=5")
            body = await response.json() if response.status >= 400 else {}
            answers.append((response.status, body.get("code"), body.get("detail", "")))
            assert response.status >= 400, (endpoint.method, endpoint.path, caller.user_id)
        if not any(
            status == 422 and code == "unknown_parameter" and repr(BOGUS) in detail
            for status, code, detail in answers
        ):
            missed.append((endpoint.method, endpoint.path, answers))
    assert missed == []


async def test_a_mistyped_filter_is_refused_and_the_known_ones_still_work(api: Api) -> None:
    owner = await api.tenant()
    typo = await owner.get("/v1/projects?nmae=web&limit=10")
    assert typo.status == 422
    problem = await typo.json()
    assert problem["code"] == "unknown_parameter"
    assert "'nmae'" in problem["detail"] and "name" in problem["detail"]  # what it does take
    listed = await owner.get("/v1/projects?name=web&limit=10&sort=-id&min_position=0")
    assert listed.status == 200, await listed.text()
    # a read of one resource takes as_of and min_position, and nothing else
    made = await api.settled(await owner.post("/v1/projects", json={"name": "web"}))
    path = f"/v1/projects/{made['resource_id']}"
    assert (await owner.get(f"{path}?min_position={made['position']}")).status == 200
    assert (await owner.get(path, params={AS_OF: "2999-01-01T00:00:00Z"})).status == 200
    assert (await owner.get(f"{path}?limit=1")).status == 422


def _time_parameters() -> list[tuple[Endpoint, str]]:
    """Every query parameter the document says is a time, and every time field the router
    reads from a query: the two must agree."""
    document = build_document(endpoints())
    found = []
    for endpoint in endpoints():
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        documented = {
            p["name"]
            for p in operation["parameters"]
            if p.get("in") == "query" and _is_time(p["schema"])
        }
        if endpoint.query is not None:
            assert time_fields(endpoint.query) <= documented, endpoint.path
        found += [(endpoint, name) for name in sorted(documented)]
    return found


def _is_time(schema: dict[str, Any]) -> bool:
    options = schema.get("anyOf", [schema])
    return any(option.get("format") == "date-time" for option in options)


NOT_TIMES = (
    "2027-03-01T00:00:00",  # no offset: its meaning would depend on the server's zone
    "1772323200",  # epoch seconds
    "1772323200.5",
    "20270301T000000Z",  # ISO 8601's basic form is not RFC 3339
    "2027-03-01",  # a day is not a time
    "yesterday",
)
TIMES = ("2027-03-01T00:00:00Z", "2027-03-01T01:00:00+01:00", "2027-03-01T00:00:00.5-00:30")


async def test_every_time_parameter_reads_rfc_3339_with_an_offset_and_nothing_else(
    api: Api,
) -> None:
    found = _time_parameters()
    names = {(e.path, name) for e, name in found}
    assert {
        ("/v1/audit-events", "since"),
        ("/v1/audit-events", "until"),
        ("/v1/billing/charges", "since"),
        ("/v1/billing/charges", "until"),
        ("/v1/projects/{id}", AS_OF),
    } <= names
    owner = await api.tenant()
    made = await api.settled(await owner.post("/v1/projects", json={"name": "timed"}))
    for endpoint, name in found:
        if endpoint.path == "/v1/projects/{id}":
            path = f"/v1/projects/{made['resource_id']}"
        elif "{" in endpoint.path:
            continue  # one read of one resource stands for all: they share the parser
        else:
            path = endpoint.path
        caller = api.admin if endpoint.path.startswith("/v1/admin/") else owner
        for given in NOT_TIMES:
            response = await caller.get(path, params={name: given})
            assert response.status == 422, (path, name, given, await response.text())
            problem = await response.json()
            assert problem["code"] == "validation_failed"
            assert problem["detail"].startswith(f"invalid query: {name} "), problem
        for given in TIMES:
            response = await caller.get(path, params={name: given})
            assert response.status in (200, 404), (path, name, given, await response.text())
            if response.status == 404:  # the project did not exist then: as_of was read
                assert name == AS_OF


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def test_json_nested_too_deep_is_refused_before_decoding(api: Api) -> None:
    owner = await api.tenant()
    deep = _nested(100_000)
    for caller, path in (
        (api.admin, "/v1/auth/login"),
        (owner, "/v1/projects"),
        (owner, "/v1/instances"),
    ):
        for body in (
            deep,
            b'{"name": ' + deep + b"}",
            b'{"name": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}",
        ):
            response = await caller.post(path, data=body, headers=_JSON)
            assert response.status == 422, (path, await response.text())
            problem = await response.json()
            assert problem["code"] == "json_too_deep", problem
    # the limit is on depth, not on brackets: many shallow ones, or brackets in text, pass
    shallow = b'{"name": "p", "description": "' + b"[" * 100_000 + b'"}'
    many = b'{"name": "q", "tags": [' + b"[[]]," * 5000 + b"[]]}"
    for body in (shallow, many):
        response = await owner.post("/v1/projects", data=body, headers=_JSON)
        assert (await response.json()).get("code") != "json_too_deep", body[:40]
    at_limit = b'{"name": ' + _nested(MAX_DEPTH - 1) + b"}"
    response = await owner.post("/v1/projects", data=at_limit, headers=_JSON)
    assert response.status == 422 and (await response.json())["code"] == "validation_failed"


_JSON = {"Content-Type": "application/json"}


async def test_only_utf_8_json_is_accepted(api: Api) -> None:
    owner = await api.tenant()
    text = '{"name": "caf\u00e9"}'
    refused = (
        (text.encode(), "application/json; charset=utf-16"),  # labelled wrong
        (text.encode("utf-16"), "application/json; charset=utf-16"),  # a real UTF-16 body
        (text.encode("utf-16-le"), "application/json"),  # UTF-16 without a label
        (text.encode("utf-32"), "application/json"),
        (b"\xef\xbb\xbf" + text.encode(), "application/json"),  # RFC 8259: no BOM
        (text.encode("latin-1"), "application/json; charset=iso-8859-1"),
    )
    for body, media in refused:
        response = await owner.post("/v1/projects", data=body, headers={"Content-Type": media})
        assert response.status == 415, (media, body[:8], await response.text())
        assert (await response.json())["code"] == "unsupported_media_type"
    for media in (
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
    ):
        response = await owner.post(
            "/v1/projects", data=text.encode(), headers={"Content-Type": media}
        )
        assert response.status == 202, (media, await response.text())


async def test_a_key_twice_in_one_object_is_refused_and_nothing_is_made(api: Api) -> None:
    owner = await api.tenant()
    for body in (
        b'{"name": "first", "name": "second"}',
        b'{"name": "p", "description": "a", "description": "b"}',
    ):
        response = await owner.post("/v1/projects", data=body, headers=_JSON)
        assert response.status == 422, (body, await response.text())
        problem = await response.json()
        assert problem["code"] == "duplicate_key" and "appears twice" in problem["detail"]
    login = await api.client.post(
        "/v1/auth/login",
        data=b'{"email": "a@b.example", "email": "c@d.example", "password": "x"}',
        headers=_JSON,
    )
    assert login.status == 422 and (await login.json())["code"] == "duplicate_key"
    listed = await (await owner.get("/v1/projects")).json()
    assert [p["name"] for p in listed["items"]] == []
    # (the same key in two objects is no duplicate: tests/unit/test_json_input.py)
    fine = await owner.post(
        "/v1/projects", data=b'{"name": "ok", "description": "x"}', headers=_JSON
    )
    assert fine.status == 202, await fine.text()
