"""Server groups over the API, and the scheduler's guarantees under real, racing appends.

The Hypothesis tests here run 50 creates at once through several command executors, each on
a store of its own (as API replicas would be), all appending to the same PostgreSQL: the
host and group aggregates' version checks are what keep the promises, not a lock.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.services import compute
from api.services.executor import CommandExecutor, CommandFailed, Decided
from api.services.unit_of_work import UnitOfWork
from domain.compute.instance import Instance
from domain.compute.server_group import ServerGroup
from domain.inventory.host import Host
from domain.metadata import Actor, ActorKind, CommandContext
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository
from tests.api.compute_world import compute_world, create
from tests.api.conftest import Api, Caller

CONCURRENT = 50
RACY = settings(
    deadline=None,
    max_examples=6,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
async def replicas(api: Api, database_url: str) -> AsyncIterator[list[CommandExecutor]]:
    """Three executors on three stores (pools, group committers) over the API's schema."""
    stores = [
        await PostgresEventStore.open(database_url, api.platform.settings.schema) for _ in range(2)
    ]
    try:
        yield [api.platform.executor, *(CommandExecutor(Repository(s)) for s in stores)]
    finally:
        for store in stores:
            await store.close()


class Region:
    def __init__(self, region_id: str, flavors: list[str], image_id: str, hosts: list[str]):
        self.region_id, self.flavors, self.image_id, self.hosts = (
            region_id,
            flavors,
            image_id,
            hosts,
        )


async def region_with(
    api: Api, capacities: list[dict[str, int]], cpu_ratio: float, flavors: list[tuple[int, int]]
) -> Region:
    """A region of its own: hosts of the given capacities, one cluster, the given flavors."""
    tag = secrets.token_hex(3)
    region_id = await create(api, "/v1/admin/regions", {"name": f"r-{tag}"})
    cluster_id = await create(
        api,
        "/v1/admin/clusters",
        {
            "region_id": region_id,
            "name": "c",
            "architecture": "x86_64",
            "kind": "compute",
            "cpu_overcommit": cpu_ratio,
        },
    )
    hosts = [
        await create(
            api,
            "/v1/admin/hosts",
            {"cluster_id": cluster_id, "hostname": f"n{i}-{tag}", "capacity": capacity},
        )
        for i, capacity in enumerate(capacities)
    ]
    flavor_ids = [
        await create(
            api,
            "/v1/admin/flavors",
            {
                "name": f"f{i}-{tag}",
                "vcpus": vcpus,
                "memory_mb": memory_mb,
                "disk": {"min_gb": 1, "max_gb": 20},
            },
        )
        for i, (vcpus, memory_mb) in enumerate(flavors)
    ]
    pool = await create(
        api,
        "/v1/admin/image-pools",
        {"region_id": region_id, "name": "p", "backend": "qcow2", "location": "/images"},
    )
    image = await create(
        api, "/v1/admin/images", {"name": "tiny", "pool_id": pool, "location": "/images/t.qcow2"}
    )
    return Region(region_id, flavor_ids, image, hosts)


async def roomy_tenant(api: Api, region_id: str) -> Caller:
    owner = await api.tenant()
    limits = {"instances": 10_000, "vcpus": 100_000, "memory_mb": 10**8}
    await api.settled(
        await api.admin.put(
            f"/v1/admin/tenants/{owner.tenant_id}/quotas",
            json={"region": region_id, "limits": limits},
        )
    )
    return owner


async def create_at_once(
    executors: list[CommandExecutor],
    tenant_id: str,
    region: Region,
    flavors: list[str],
    *,
    counts: list[int] | None = None,
    group_id: str | None = None,
) -> tuple[list[str], Counter[str]]:
    """Creates, all at once, spread over the executors: the instance ids made, refusal codes."""
    healthy = {host_id: compute.Health(healthy=True) for host_id in region.hosts}
    counts = counts or [1] * len(flavors)

    async def one(index: int) -> list[str] | str:
        async def decide(unit: UnitOfWork) -> Decided:
            return await compute.create_instances(
                unit,
                tenant_id=tenant_id,
                project_id=None,
                name=f"m{index}",
                flavor_id=flavors[index],
                image_id=region.image_id,
                region_id=region.region_id,
                disk_gb=1,
                count=counts[index],
                preemptible=False,
                host_ids=region.hosts,
                health=healthy,
                server_group_id=group_id,
            )

        context = CommandContext(
            actor=Actor(ActorKind.USER, "usr-racer"),
            tenant_id=tenant_id,
            command_id=f"race:{secrets.token_hex(8)}",
        )
        executor = executors[index % len(executors)]
        try:
            outcome = await executor.run(context, "compute:instance:create", decide)
        except CommandFailed as refused:
            assert refused.error.status == 409, refused.error
            return refused.error.code
        return list(outcome.body["instance_ids"])

    results = await asyncio.gather(*(one(i) for i in range(len(flavors))))
    made = [i for result in results if isinstance(result, list) for i in result]
    return made, Counter(result for result in results if isinstance(result, str))


@RACY
@given(hosts=st.integers(1, 12), most=st.none() | st.integers(1, 3))
async def test_hard_anti_affinity_holds_with_fifty_concurrent_creates(
    api: Api, replicas: list[CommandExecutor], hosts: int, most: int | None
) -> None:
    big = {"vcpus": 256, "memory_mb": 1024 * 1024, "disk_gb": 10_000}
    region = await region_with(api, [big] * hosts, 1.0, [(1, 512)])
    owner = await roomy_tenant(api, region.region_id)
    body: dict[str, Any] = {"name": "apart", "policy": "anti-affinity", "max_per_host": most}
    group_id = (await api.settled(await owner.post("/v1/server-groups", json=body)))["resource_id"]
    assert owner.tenant_id is not None
    made, refused = await create_at_once(
        replicas, owner.tenant_id, region, region.flavors * CONCURRENT, group_id=group_id
    )

    per_host = most or 1
    assert len(made) == min(CONCURRENT, hosts * per_host)
    assert set(refused) <= {"no_capacity"} and refused.total() == CONCURRENT - len(made)
    group = await api.platform.repository.get(group_id, ServerGroup)
    assert set(group.members) == set(made)
    assert max(Counter(group.members.values()).values()) <= per_host
    for instance_id in made:
        instance = await api.platform.repository.get(instance_id, Instance)
        assert instance.host_id == group.members[instance_id]
        assert instance.server_group_id == group_id
    for host_id in region.hosts:
        host = await api.platform.repository.get(host_id, Host)
        assert sum(c["server_group_id"] == group_id for c in host.claims.values()) <= per_host


@RACY
@given(
    capacities=st.lists(
        st.fixed_dictionaries(
            {
                "vcpus": st.integers(1, 16),
                "memory_mb": st.integers(512, 8192),
                "disk_gb": st.integers(1, 60),
            }
        ),
        min_size=1,
        max_size=6,
    ),
    cpu_ratio=st.sampled_from([1.0, 1.5, 2.0, 4.0]),
    flavors=st.lists(st.tuples(st.integers(1, 8), st.integers(256, 4096)), min_size=1, max_size=3),
    data=st.data(),
)
async def test_capacity_times_overcommit_is_never_exceeded_under_racing_creates(
    api: Api,
    replicas: list[CommandExecutor],
    capacities: list[dict[str, int]],
    cpu_ratio: float,
    flavors: list[tuple[int, int]],
    data: st.DataObject,
) -> None:
    region = await region_with(api, capacities, cpu_ratio, flavors)
    owner = await roomy_tenant(api, region.region_id)
    assert owner.tenant_id is not None
    picks = data.draw(st.lists(st.sampled_from(region.flavors), min_size=CONCURRENT, max_size=50))
    counts = data.draw(st.lists(st.integers(1, 3), min_size=len(picks), max_size=len(picks)))
    made, refused = await create_at_once(replicas, owner.tenant_id, region, picks, counts=counts)

    assert set(refused) <= {"no_capacity"}
    claimed: set[str] = set()
    for host_id, capacity in zip(region.hosts, capacities, strict=True):
        host = await api.platform.repository.get(host_id, Host)
        used = host.used()
        assert used["vcpus"] <= int(capacity["vcpus"] * cpu_ratio)
        assert used["memory_mb"] <= capacity["memory_mb"]
        assert used["disk_gb"] <= capacity["disk_gb"]
        claimed |= set(host.claims)
    assert claimed == set(made)  # every instance made holds exactly one claim, and no other


async def test_a_server_group_is_created_read_listed_and_deleted_when_empty(api: Api) -> None:
    world = await compute_world(api)
    owner = await api.tenant()
    created = await api.settled(
        await owner.post("/v1/server-groups", json={"name": "db", "policy": "anti-affinity"})
    )
    group_id = created["resource_id"]
    view = await (await owner.get(f"/v1/server-groups/{group_id}")).json()
    assert view["policy"] == "anti-affinity" and view["members"] == {}
    listed = await (await owner.get("/v1/server-groups")).json()
    assert [g["id"] for g in listed["items"]] == [group_id]

    # One host: the second member of an anti-affinity group fits nowhere.
    from tests.api.fixtures_world import heartbeat

    await heartbeat(api, world.host_id)
    body = {
        "name": "db",
        "region_id": world.region_id,
        "flavor_id": world.flavor_id,
        "image_id": world.image_id,
        "server_group_id": group_id,
    }
    first = await api.settled(await owner.post("/v1/instances", json=body))
    second = await owner.post("/v1/instances", json=body)
    assert second.status == 409 and (await second.json())["code"] == "no_capacity"
    view = await (await owner.get(f"/v1/server-groups/{group_id}")).json()
    assert view["members"] == {first["instance_ids"][0]: world.host_id}

    busy = await owner.client.delete(f"/v1/server-groups/{group_id}", headers=owner.headers())
    assert busy.status == 409 and (await busy.json())["code"] == "invalid_state"

    # Someone else's group cannot be named at create.
    stranger = await api.tenant()
    foreign = await stranger.post("/v1/instances", json=body)
    assert foreign.status == 422, await foreign.text()
    assert (await stranger.get(f"/v1/server-groups/{group_id}")).status == 404

    empty = await api.settled(
        await owner.post("/v1/server-groups", json={"name": "x", "policy": "soft-affinity"})
    )
    gone = await owner.client.delete(
        f"/v1/server-groups/{empty['resource_id']}", headers=owner.headers()
    )
    assert gone.status == 202, await gone.text()
