"""The OpenAPI document and the reference page: valid, complete, and served offline."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest
from openapi_spec_validator import validate

from api.app import endpoints
from api.openapi import build_document, error_statuses
from api.reference import render
from tests.api.conftest import Api

_PARAM = re.compile(r"{(\w+)}")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return build_document(endpoints())


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_endpoint_is_documented_once_with_a_unique_operation_id(
    document: dict[str, Any],
) -> None:
    declared = {(e.method.lower(), e.path) for e in endpoints()}
    documented = {(m, p) for p, item in document["paths"].items() for m in item}
    assert documented == declared
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)) == len(endpoints())


def test_each_operation_documents_its_parameters_answers_and_errors(
    document: dict[str, Any],
) -> None:
    for endpoint in endpoints():
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        names = {p.get("name") or p["$ref"].rsplit("/", 1)[-1] for p in operation["parameters"]}
        assert set(_PARAM.findall(endpoint.path)) <= names, endpoint.path
        if endpoint.query is not None:
            assert set(endpoint.query.__struct_fields__) <= names, endpoint.path
        if endpoint.mutation:
            assert {"IdempotencyKey", "RequestId"} <= names, endpoint.path
        if endpoint.body is not None:
            assert operation["requestBody"]["required"] is True
        responses = operation["responses"]
        assert str(endpoint.status) in responses
        for status in error_statuses(endpoint):
            assert responses[str(status)]["$ref"].startswith("#/components/responses/")
        if not endpoint.public:
            assert "401" in responses and "security" not in operation
        else:
            assert operation["security"] == []
        if endpoint.status == 202:
            headers = responses["202"]["headers"]
            assert headers["Location"]["required"] and headers["X-Scloud-Position"]["required"]
        if endpoint.method == "GET" and endpoint.kind is not None:
            assert "ETag" in responses["200"]["headers"]


def test_the_documented_query_parameters_are_the_ones_the_router_takes(
    document: dict[str, Any],
) -> None:
    for endpoint in endpoints():
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        documented = {p["name"] for p in operation["parameters"] if p.get("in") == "query"}
        # min_position may come with any call; the document lists it where a read waits
        assert documented <= endpoint.query_names, endpoint.path
        assert endpoint.query_names - documented <= {"min_position"}, endpoint.path


def test_error_answers_are_problem_json(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    assert set(responses) >= {"Unauthorized", "Forbidden", "NotFound", "Unprocessable"}
    for response in responses.values():
        schema = response["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code"} <= set(problem["required"])


def test_mutations_link_to_their_operation_and_creates_to_what_they_made(
    document: dict[str, Any],
) -> None:
    created = document["paths"]["/v1/users"]["post"]["responses"]["202"]["links"]
    assert created["Operation"]["operationId"] == "get_operation"
    assert created["GetUser"]["parameters"]["path.id"] == "$response.body#/resource_id"


class _Resources(HTMLParser):
    """Collects every attribute and inline style that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            if name in {"src", "srcset", "data", "poster", "action"} or (
                name == "href" and not (value or "").startswith("#")
            ):
                self.fetches.append(f"<{tag} {name}={value}>")


def test_the_reference_lists_every_path_and_loads_nothing_from_elsewhere(
    document: dict[str, Any],
) -> None:
    page = render(document)
    for endpoint in endpoints():
        assert f"<span class=path>{endpoint.path}</span>" in page, endpoint.path
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name.lower()}"' in page
    parser = _Resources()
    parser.feed(page)
    assert parser.fetches == []
    assert not parser.tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert "@import" not in page and "url(" not in page


async def test_the_api_serves_its_document_and_reference_without_credentials(api: Api) -> None:
    response = await api.client.get("/v1/openapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    served = await response.json()
    assert served["paths"].keys() == build_document(endpoints())["paths"].keys()
    assert "/v1/openapi.json" in served["paths"] and "/v1/docs" in served["paths"]
    page = await api.client.get("/v1/docs")
    assert page.status == 200 and page.content_type == "text/html"
    assert "<span class=path>/v1/admin/tenants/{id}</span>" in await page.text()
