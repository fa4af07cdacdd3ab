"""The hosts a create places on: listed once, then learnt from the store's headers, so a
host registered a moment ago is a candidate at once and no create queries them all."""

from __future__ import annotations

import asyncio
import secrets

from api.services.compute import FleetCache
from domain.compute.scheduler import HostHealth
from domain.inventory.cluster import Cluster
from domain.inventory.host import Host
from domain.metadata import Actor, CommandContext
from tests.api.compute_world import compute_world
from tests.api.conftest import Api


async def register(api: Api, cluster: Cluster, name: str) -> tuple[str, int]:
    """A host straight into the store: its id and the position of its event."""
    host = Host.register(cluster, f"{name}.example", {"vcpus": 8, "memory_mb": 8192, "disk_gb": 50})
    context = CommandContext(actor=Actor.system("test"), command_id=secrets.token_hex(8))
    result = await api.platform.repository.save(context, host)
    return host.id, result.last_position


async def test_hosts_after_the_listing_are_learnt_from_the_store(api: Api) -> None:
    world = await compute_world(api)
    repository = api.platform.repository
    cluster = await repository.get(world.cluster_id, Cluster)
    first, listed_to = await register(api, cluster, "first")
    second, _ = await register(api, cluster, "second")
    listings: list[int] = []

    async def listing() -> tuple[int, list[str]]:
        # As the documents might say while their projection is behind the second host.
        listings.append(listed_to)
        return listed_to, [world.host_id, first]

    cache = FleetCache(repository)
    assert await cache.host_ids(listing) == sorted([world.host_id, first, second])
    third, _ = await register(api, cluster, "third")
    assert await cache.host_ids(listing) == sorted([world.host_id, first, second, third])
    assert listings == [listed_to]  # listed once


async def test_a_listing_behind_an_earlier_refresh_is_read_from_its_own_position(
    api: Api,
) -> None:
    world = await compute_world(api)
    repository = api.platform.repository
    cluster = await repository.get(world.cluster_id, Cluster)
    first, listed_to = await register(api, cluster, "first")
    cache = FleetCache(repository)
    await cache.refresh()  # a placement's refresh before any listing: past ``first``
    second, _ = await register(api, cluster, "second")
    await cache.refresh()

    async def listing() -> tuple[int, list[str]]:
        return listed_to - 1, [world.host_id]  # from before ``first``

    assert await cache.host_ids(listing) == sorted([world.host_id, first, second])


async def test_the_platform_places_on_a_host_registered_after_its_first_create(
    api: Api,
) -> None:
    world = await compute_world(api)
    hosts, _ = await api.platform.hosts_for_placing()
    assert world.host_id in hosts
    cluster = await api.platform.repository.get(world.cluster_id, Cluster)
    late, _ = await register(api, cluster, "late")
    hosts, _ = await api.platform.hosts_for_placing()
    assert late in hosts  # no wait for the documents' projection


async def save(api: Api, *aggregates: object) -> None:
    context = CommandContext(actor=Actor.system("test"), command_id=secrets.token_hex(8))
    await api.platform.repository.save(context, *aggregates)  # type: ignore[arg-type]


async def test_region_views_follow_claims_and_clusters_and_are_whole_at_once(api: Api) -> None:
    world = await compute_world(api)
    repository = api.platform.repository
    cluster = await repository.get(world.cluster_id, Cluster)
    others = [(await register(api, cluster, f"more{n}"))[0] for n in range(5)]
    ids = sorted([world.host_id, *others])
    health = {host_id: HostHealth(True) for host_id in ids}
    cache = FleetCache(repository)
    await cache.refresh()

    # Two creates at once, the first still loading hosts: both see all of them.
    first, second = await asyncio.gather(
        cache.region(world.region_id, ids, health), cache.region(world.region_id, ids, health)
    )
    assert sorted(v.id for v in first.views) == ids == sorted(v.id for v in second.views)

    # A claim made elsewhere: the next view of that host holds it, the others are kept.
    host = await repository.get(world.host_id, Host)
    host.claim(
        "i-claimed",
        {"vcpus": 2, "memory_mb": 512, "disk_gb": 1},
        [],
        tenant_id="tnt-x",
        preemptible=False,
        server_group_id=None,
        cpu_overcommit=1.0,
        memory_overcommit=1.0,
    )
    await save(api, host)
    before = {view.id: view for view in first.views}
    await cache.refresh()
    await cache.load(ids)
    after = await cache.region(world.region_id, ids, health)
    views = {view.id: view for view in after.views}
    assert views[world.host_id].used.vcpus == 2
    assert after.versions[world.host_id] == host.version
    assert all(views[h] is before[h] for h in others)  # not made again

    # The cluster's overcommit changes: every host's view says so.
    cluster = await repository.get(world.cluster_id, Cluster)
    cluster.set_overcommit(3.0, None)
    await save(api, cluster)
    await cache.refresh()
    changed = await cache.region(world.region_id, ids, health)
    assert {view.cpu_overcommit for view in changed.views} == {3.0}
