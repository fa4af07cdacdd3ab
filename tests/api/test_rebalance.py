"""Load rebalancing: a host over the load threshold for the sustained period sheds its running
instances by live migration, one per period, to a host under the threshold; with no such host
nothing moves. Two simulated daemons whose heartbeats report the loads the test sets."""

from __future__ import annotations

import asyncio
import os
import time

import msgspec

from tests.api.conftest import Api
from tests.api.test_host_failure import TwoHosts, audit, two_hosts, until
from tests.api.test_instance_migration import events

__all__ = ["two_hosts"]  # the fixture, shared with the host failure tests

AFTER = 2.5
"""The sustained period these tests configure (seconds): longer than a round (1 s)."""
CORES = os.cpu_count() or 1


async def test_an_overloaded_host_sheds_instances_to_one_under_the_threshold(
    api: Api, two_hosts: TwoHosts
) -> None:
    fleet, world = two_hosts.fleet, two_hosts.world
    busy, calm = two_hosts.hosts
    for host_id in (busy, calm):
        fleet.loads[host_id] = 0.1 * CORES
    await api.settled(await api.admin.post(f"/v1/admin/hosts/{calm}/actions/disable"))
    owner = await api.tenant("rebalanced")
    created = await api.settled(
        await owner.post(
            "/v1/instances",
            json={
                "name": "hot",
                "region_id": world.region_id,
                "flavor_id": world.flavor_id,
                "image_id": world.image_id,
                "count": 2,
            },
        )
    )
    ids = created["instance_ids"]
    await until(api, owner, ids, lambda v: v["status"] == "running" and v["host_id"] == busy, 30)
    await api.settled(await api.admin.post(f"/v1/admin/hosts/{calm}/actions/enable"))
    api.platform.settings = msgspec.structs.replace(
        api.platform.settings, rebalance_load_per_core=1.0, rebalance_after_seconds=AFTER
    )

    # Both over the threshold: nowhere to go, nothing moves.
    fleet.loads[busy] = fleet.loads[calm] = 5.0 * CORES
    await asyncio.sleep(AFTER + 1.5)
    seen = await until(api, owner, ids, lambda v: True, 5)
    assert {v["host_id"] for v in seen} == {busy}

    # The busy host has been over for a while: one instance goes at once, the next only
    # after another sustained period.
    loaded = time.monotonic()
    fleet.loads[calm] = 0.1 * CORES
    arrived: dict[str, float] = {}
    async with asyncio.timeout(6 * AFTER + 10):
        while len(arrived) < len(ids):
            for view in await until(api, owner, ids, lambda v: True, 5):
                if view["host_id"] == calm and view["status"] == "running":
                    arrived.setdefault(view["id"], time.monotonic() - loaded)
            await asyncio.sleep(0.05)
    first, second = sorted(arrived.values())
    print(f"rebalancing: moves {first:.1f} s and {second:.1f} s after relief (period {AFTER} s)")
    assert second - first >= AFTER * 0.8  # one per period (less what polling blurs)
    assert all(fleet.computes[calm].states[i].value == "running" for i in ids)
    assert not fleet.computes[busy].states
    for instance_id in ids:
        steps = await audit(api, instance_id)
        assert ("system", "rebalancer", "compute:instance:rebalance", "succeeded") in steps
        names = [name for name, _ in await events(api, instance_id)]
        assert names.count("Migrated") == 1
