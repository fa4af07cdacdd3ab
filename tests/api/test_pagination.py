"""Cursor pagination holds still while others insert: nothing seen twice, nothing missed."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any

import pytest

from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    cheap_passwords,  # noqa: F401 (autouse fixture)
    tenant_of,
)

_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
EXISTING = ["m", "m", "c", "m", "x", "a", "q", "q", "e", "z", "k"]
"""Names of the projects there before paging starts: ties straddle page boundaries."""
INSERTED = ["b", "m", "y", "0", "zz"]
"""Names the concurrent writer cycles through: before, at and after any cursor."""


async def create_project(api: Api, owner: Caller, name: str) -> str:
    body = await api.settled(await owner.post("/v1/projects", json={"name": name}))
    return str(body["resource_id"])


async def prepared(api: Api) -> tuple[Caller, dict[str, str]]:
    owner = await api.tenant()
    await api.settled(
        await api.admin.put(
            f"/v1/admin/tenants/{tenant_of(owner)}/quotas", json={"limits": {"projects": 500}}
        )
    )
    existing = {}
    for name in EXISTING:
        existing[await create_project(api, owner, name)] = name
    return owner, existing


async def page_through(
    api: Api, owner: Caller, sort: str, between_pages: asyncio.Queue[int]
) -> list[list[dict[str, Any]]]:
    """Every page, following ``Link: rel=next``; the writer runs between pages."""
    pages: list[list[dict[str, Any]]] = []
    url: str | None = f"/v1/projects?limit=3&sort={sort}"
    while url is not None:
        response = await owner.get(url)
        assert response.status == 200, await response.text()
        body = await response.json()
        assert len(body["items"]) <= 3
        pages.append(body["items"])
        link = response.headers.get("Link")
        if body["next_page_token"] is None:
            assert link is None, "the last page still links to a next one"
            url = None
        else:
            assert link is not None, "a page with more to come has no Link: rel=next"
            found = _NEXT.search(link)
            assert found, link
            url = found.group(1)
            assert f"sort={sort}" in url.replace("%2D", "-") and "page_token=" in url
            await between_pages.put(len(pages))
            await between_pages.join()  # the writer has inserted (and settled) its projects
        assert len(pages) < 50, "paging does not end"
    return pages


async def writer(api: Api, owner: Caller, pages: asyncio.Queue[int], made: list[str]) -> None:
    """Another client: two new projects each time a page has been read."""
    while True:
        n = await pages.get()
        for i in range(2):
            made.append(await create_project(api, owner, INSERTED[(2 * n + i) % len(INSERTED)]))
        pages.task_done()


@pytest.mark.parametrize("sort", ["name", "-name", "-id"])
async def test_paging_while_another_client_inserts(api: Api, sort: str) -> None:
    owner, existing = await prepared(api)
    between: asyncio.Queue[int] = asyncio.Queue()
    made: list[str] = []
    inserting = asyncio.create_task(writer(api, owner, between, made))
    try:
        pages = await page_through(api, owner, sort, between)
    finally:
        inserting.cancel()
    assert made, "nothing was inserted while paging: the test proved nothing"

    seen = [item["id"] for page in pages for item in page]
    assert not [i for i, n in Counter(seen).items() if n > 1], "an item was seen twice"
    assert Counter(i for i in seen if i in existing) == Counter(existing.keys()), (
        "an item that existed before paging was missed"
    )
    assert all(page for page in pages[:-1]), "an empty page in the middle"

    field = sort.lstrip("-")
    keys = [(item[field], item["id"]) for page in pages for item in page]
    assert keys == sorted(keys, reverse=sort.startswith("-")), f"not in {sort} order"
    if sort == "-id":
        # Newer ids sort before the cursor: an insert made while paging backwards is never seen.
        assert not set(made) & set(seen)


async def test_a_page_token_from_elsewhere_is_refused(api: Api) -> None:
    owner = await api.tenant()
    for token in ("not-a-token", "W10", "bm90IGpzb24"):
        response = await owner.get("/v1/projects", params={"page_token": token})
        assert response.status == 422, (token, await response.text())
        assert (await response.json())["code"] == "validation_failed"
