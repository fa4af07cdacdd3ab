"""Tenant isolation, generated from the route table.

Every endpoint in ``api.app.endpoints()`` is called by every kind of caller tenant A has
(each built-in tenant role, a custom role, a project-scoped sub-account and a narrow API
key): endpoints whose path names an ``{id}`` aim at a real object of their ``kind`` in
tenant B, list and singleton reads must never show B's objects, and A's other mutations
must leave B untouched. A new endpoint is covered without editing this file. A new id
*kind* needs a creator in ``tests/api/fixtures_world.py`` (``CREATORS``); until it has one
this test fails and says so, which is the point.

Aiming at B's object must look exactly like aiming at an id that exists nowhere, in the
answer and in A's own audit log; the platform admin's audit log records it as denied.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from api.app import endpoints
from api.routing import Endpoint
from domain.identity.permissions import TENANT_ROLES
from domain.ids import is_id, new_id
from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import (
    audit_rows,
    call,
    cheap_passwords,  # noqa: F401 (autouse fixture)
    create,
    documents_of,
    kinds_in_use,
    logged,
    sample_body,
    settle,
    tenant_of,
    unique,
)


@pytest.fixture
def platform_overrides() -> dict[str, Any]:
    """Every one of the hundreds of denials below is recorded one by one."""
    return {"denials_per_source": 100_000}


_PARAM = re.compile(r"{(\w+)}")
"""Path parameters besides ``{id}``: given values that name nothing."""


@dataclass
class Attempt:
    endpoint: Endpoint
    caller: str
    real: str
    fake: str
    status: int
    request_id: str = field(default="")


async def callers_of(api: Api, owner: Caller) -> dict[str, Caller]:
    """Tenant A's callers: every built-in role, a custom role, a scoped one, a narrow key."""
    callers = {"owner": owner}
    for role in sorted(TENANT_ROLES):
        if role != "owner":
            callers[role] = await api.sub_account(owner, [role])
    project = await api.settled(await owner.post("/v1/projects", json={"name": "a-project"}))
    role = await api.settled(
        await owner.post("/v1/roles", json={"name": "a-custom", "actions": ["iam:*", "*:*:read"]})
    )
    callers["custom-role"] = await api.sub_account(owner, [], custom_roles=[role["resource_id"]])
    callers["project-scoped"] = await api.sub_account(
        owner, ["operator"], projects=[project["resource_id"]]
    )
    key = await api.settled(
        await owner.post("/v1/api-keys", json={"name": "narrow", "actions": ["iam:*:read"]})
    )
    callers["narrow-key"] = Caller(owner.client, key["api_key"], owner.user_id, owner.tenant_id)
    return callers


def markers_of(documents: dict[str, tuple[int, str]], token: str) -> set[str]:
    """What must never reach tenant A: the ids of B's documents, and B's marker token.

    (Ids B's documents merely mention, a public image or a region, are the platform's.)
    """
    return {token} | {resource_id for resource_id in documents if is_id(resource_id)}


def leaked(text: str, markers: set[str]) -> list[str]:
    return sorted(m for m in markers if m in text)


def normalised(text: str, target: str) -> Any:
    """An answer with the aimed-at id and the request id taken out."""
    try:
        body = json.loads(text.replace(target, "{id}"))
    except ValueError:
        return text.replace(target, "{id}")
    if isinstance(body, dict):
        body.pop("request_id", None)
    return body


def audit_view(row: dict[str, Any], target: str) -> dict[str, Any]:
    kept = {
        k: v
        for k, v in row.items()
        if k not in {"operation_id", "occurred_at", "position", "request_id"}
    }
    return json.loads(json.dumps(kept).replace(target, "{id}"))  # type: ignore[no-any-return]


@dataclass
class World:
    """Tenant B (the victim) with an object of every kind, and tenant A's callers."""

    objects: dict[str, str]
    markers: set[str]
    attacker_id: str
    callers: dict[str, Caller]


async def read_without_ids(world: World, endpoint: Endpoint, name: str, caller: Caller) -> int:
    """A list or singleton read: nothing of B's; returns how many items it listed."""
    response, text = await call(caller, "GET", endpoint.path)
    where = f"{name}: GET {endpoint.path} -> {response.status}"
    assert response.status < 500, where
    assert not leaked(text, world.markers), f"{where} leaks {leaked(text, world.markers)}"
    if response.status != 200 or response.content_type != "application/json":
        return 0
    items = json.loads(text).get("items")
    items = items if isinstance(items, list) else []
    for item in items:
        # A's own, or the platform's (a catalogue of regions, flavors, …).
        assert item.get("tenant_id") in (world.attacker_id, None), where
    return len(items)


async def aim_by_id(world: World, endpoint: Endpoint, name: str, n: int) -> Attempt:
    """B's object, then an id that exists nowhere: two answers that must be one."""
    assert endpoint.kind is not None
    caller = world.callers[name]
    body = sample_body(endpoint.body) if endpoint.body is not None else None
    attempt = Attempt(endpoint, name, world.objects[endpoint.kind], new_id(endpoint.kind), 0)
    attempt.request_id = f"iso-real-{n}"
    answers = []
    for target, request_id in ((attempt.real, attempt.request_id), (attempt.fake, f"iso-fake-{n}")):
        response, text = await call(
            caller,
            endpoint.method,
            _PARAM.sub(r"no-such-\1", endpoint.path.replace("{id}", target)),
            body=body,
            headers={"X-Request-Id": request_id},
        )
        answers.append((response.status, response.content_type, normalised(text, target)))
        rest = text.replace(target, "{id}")
        where = f"{name}: {endpoint.method} {endpoint.path} on {target}"
        assert not leaked(rest, world.markers), f"{where} leaks {leaked(rest, world.markers)}"
    where = f"{name}: {endpoint.method} {endpoint.path}"
    attempt.status = answers[0][0]
    assert attempt.status in (403, 404), f"{where} on B's object answered {attempt.status}"
    assert answers[0][1] == "application/problem+json", where
    assert answers[0] == answers[1], f"{where}: B's object is told from a missing one"
    return attempt


async def check_audit(
    api: Api, world: World, owner: Caller, victim: Caller, attempts: list[Attempt]
) -> None:
    """Each attempt denied in the admin's log; A's own log the same as for a missing id;
    each attempt on B's object that answered 404 in B's log, which thus sees the probe."""
    wanted = {a.request_id for a in attempts}
    # Denials reach the log after their answer: poll (bounded) until they are all there.
    denied = set(await logged(api.admin, wanted, outcome="denied"))
    missing = [
        f"{a.caller}: {a.endpoint.method} {a.endpoint.path}"
        for a in attempts
        if a.request_id not in denied
    ]
    assert not missing, f"denied attempts absent from the admin's audit log: {missing}"
    probes = {a.request_id: a for a in attempts if a.status == 404}
    assert probes, "no attempt answered 404: the victim's log check would prove nothing"
    seen = await logged(victim, set(probes), outcome="denied")
    unseen = [
        f"{a.caller}: {a.endpoint.method} {a.endpoint.path}"
        for a in probes.values()
        if a.request_id not in seen
    ]
    assert not unseen, f"probes of B's objects absent from B's own audit log: {unseen}"
    for request_id, attempt in probes.items():
        row = seen[request_id]
        assert row["tenant_id"] == tenant_of(victim) and row["resource_id"] == attempt.real
        assert row["actor_id"] == world.callers[attempt.caller].user_id
    await settle(api)
    own: dict[str, list[dict[str, Any]]] = {}
    for row in await audit_rows(owner):
        own.setdefault(row["request_id"] or "", []).append(row)
        assert row["tenant_id"] == world.attacker_id
    for attempt in attempts:
        fake_id = attempt.request_id.replace("-real-", "-fake-")
        real_rows = [audit_view(r, attempt.real) for r in own.get(attempt.request_id, [])]
        fake_rows = [audit_view(r, attempt.fake) for r in own.get(fake_id, [])]
        assert real_rows == fake_rows, (
            f"{attempt.caller}: {attempt.endpoint.method} {attempt.endpoint.path}: A's audit "
            "log tells B's object from a missing one"
        )


async def mutate_without_ids(world: World, name: str, mutations: list[Endpoint]) -> None:
    """A's mutations that name no object: whatever they answer, nothing of B's in it."""
    for endpoint in mutations:
        body = sample_body(endpoint.body) if endpoint.body is not None else None
        response, text = await call(world.callers[name], endpoint.method, endpoint.path, body=body)
        where = f"{name}: {endpoint.method} {endpoint.path} -> {response.status}"
        assert response.status < 500, where
        assert not leaked(text, world.markers), f"{where} leaks {leaked(text, world.markers)}"


async def test_no_endpoint_lets_a_tenant_reach_another_tenants_objects(api: Api) -> None:
    table = endpoints()
    kinds = kinds_in_use(table)

    token = unique("zzvictim")
    victim = await api.tenant(token)
    victim_id = tenant_of(victim)
    objects = {kind: await create(kind, api, victim) for kind in kinds}
    await api.sub_account(victim, ["admin"])
    await settle(api)
    before = await documents_of(api, victim_id)
    markers = markers_of(before, token)
    # The platform's own inventory (regions, hosts, …) is nobody's secret; B's objects are.
    assert victim_id in markers and len(markers & set(objects.values())) >= 3

    attacker = await api.tenant()
    world = World(objects, markers, tenant_of(attacker), await callers_of(api, attacker))
    await settle(api)

    reads = [e for e in table if e.method == "GET" and "{" not in e.path and not e.public]
    listed = 0
    for endpoint in reads:
        counts = await asyncio.gather(
            *(read_without_ids(world, endpoint, n, c) for n, c in world.callers.items())
        )
        listed += sum(counts)
    assert listed > 0, "no list answered anything: the listing check proved nothing"

    attempts: list[Attempt] = []
    for endpoint in (e for e in table if e.kind is not None):
        attempts.extend(
            await asyncio.gather(
                *(
                    aim_by_id(world, endpoint, name, len(attempts) + i)
                    for i, name in enumerate(world.callers)
                )
            )
        )
    assert attempts, "no endpoint names an object: nothing was tried"
    await check_audit(api, world, attacker, victim, attempts)

    mutations = [e for e in table if e.mutation and e.kind is None and "{" not in e.path]
    mutations.sort(key=lambda e: e.path.startswith("/v1/me"))  # self-service ends sessions
    await asyncio.gather(*(mutate_without_ids(world, name, mutations) for name in world.callers))

    await settle(api)
    after = await documents_of(api, victim_id)
    # B's log has gained the record of each probe (a denied operation of B's): nothing else.
    probes = {
        resource_id
        for resource_id, (_, view) in after.items()
        if resource_id not in before
        and resource_id.startswith("op-")
        and json.loads(view).get("status") == "denied"
    }
    assert probes, "B's documents gained no record of the probes"
    assert {k: v for k, v in after.items() if k not in probes} == before, "tenant A changed B"


async def test_ids_of_another_tenant_in_a_body_are_refused_like_missing_ones(api: Api) -> None:
    victim = await api.tenant()
    project = await create("prj", api, victim)
    role = await create("role", api, victim)
    owner = await api.tenant()
    answers = []
    for project_id, role_id in ((project, role), (new_id("prj"), new_id("role"))):
        for field_name, value in (("projects", [project_id]), ("custom_roles", [role_id])):
            response = await owner.post(
                "/v1/users",
                json={
                    "email": f"{unique('ref')}@example.com",
                    "password": "ref-password-1234",
                    field_name: value,
                },
            )
            assert response.status == 422, await response.text()
            answers.append((field_name, normalised(await response.text(), value[0])))
    assert answers[:2] == answers[2:]
    listed = await (await owner.get("/v1/users")).json()
    assert len(listed["items"]) == 1, "a refused sub-account was created anyway"
