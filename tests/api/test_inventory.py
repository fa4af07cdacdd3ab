"""The admin's inventory and settings through HTTP: regions, clusters, hosts, pools, flavors."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.api.conftest import Api, Caller

CAPACITY = {"vcpus": 64, "memory_mb": 262144, "disk_gb": 2000}


async def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The problem+json of a refused request, checked for its status and stable code."""
    text = await response.text()
    assert response.status == status, text
    assert response.content_type == "application/problem+json", text
    body: dict[str, Any] = await response.json()
    assert body["code"] == code, body
    assert body["request_id"]
    return body


async def projections_ready(api: Api) -> None:
    """Wait until the worker has created the read model's tables.

    The fixture (like ``run_api``) serves requests before the worker's ``setup`` has run,
    so a GET that is a test's very first request can meet a missing table.
    """
    table = f"{api.platform.settings.schema}.resource_documents"
    for _ in range(500):
        if await api.platform.store.pool.fetchval("SELECT to_regclass($1)", table):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{table} was never created")


async def read(caller: Caller, path: str) -> dict[str, Any]:
    response = await caller.get(path)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def names(caller: Caller, path: str) -> list[str]:
    return sorted(item["name"] for item in (await read(caller, path))["items"])


async def create(api: Api, path: str, body: dict[str, Any]) -> str:
    return str((await api.settled(await api.admin.post(path, json=body)))["resource_id"])


async def region(api: Api, name: str = "eu-west-1", **extra: Any) -> str:
    return await create(api, "/v1/admin/regions", {"name": name, **extra})


async def cluster(api: Api, region_id: str, name: str = "c1", **extra: Any) -> str:
    body = {"region_id": region_id, "name": name, "architecture": "x86_64", "kind": "compute"}
    return await create(api, "/v1/admin/clusters", {**body, **extra})


# -- regions ---------------------------------------------------------------------------


async def test_a_region_is_opened_described_and_switched_off_and_on(api: Api) -> None:
    region_id = await region(api, quota_defaults={"vcpus": 200}, description="Dublin")
    view = await read(api.admin, f"/v1/admin/regions/{region_id}")
    assert view == {
        "id": region_id,
        "tenant_id": None,
        "name": "eu-west-1",
        "display_name": "eu-west-1",
        "description": "Dublin",
        "status": "enabled",
        "quota_defaults": {"vcpus": 200},
    }
    await api.settled(
        await api.admin.patch(
            f"/v1/admin/regions/{region_id}",
            json={"display_name": "EU West", "quota_defaults": {"vcpus": None, "gpus": 8}},
        )
    )
    view = await read(api.admin, f"/v1/admin/regions/{region_id}")
    assert (view["display_name"], view["quota_defaults"]) == ("EU West", {"gpus": 8})

    await region(api, "us-east-1", enabled=False)
    owner = await api.tenant()
    assert await names(owner, "/v1/regions") == ["eu-west-1"]
    assert await names(api.admin, "/v1/admin/regions?status=disabled") == ["us-east-1"]
    await api.settled(await api.admin.post(f"/v1/admin/regions/{region_id}/actions/disable"))
    assert await names(owner, "/v1/regions") == []
    again = await api.admin.post(f"/v1/admin/regions/{region_id}/actions/disable")
    await problem(again, 409, "invalid_state")
    await api.settled(await api.admin.post(f"/v1/admin/regions/{region_id}/actions/enable"))
    assert await names(owner, "/v1/regions") == ["eu-west-1"]


async def test_region_input_is_validated(api: Api) -> None:
    post = api.admin.post
    await problem(
        await post("/v1/admin/regions", json={"name": "EU West"}), 422, "validation_failed"
    )
    await problem(
        await post("/v1/admin/regions", json={"name": "r1", "quota_defaults": {"cpus": 4}}),
        422,
        "validation_failed",
    )
    await problem(
        await post("/v1/admin/regions", json={"name": "r1", "quota_defaults": {"vcpus": -1}}),
        422,
        "validation_failed",
    )
    await problem(
        await post("/v1/admin/regions", json={"name": "r1", "colour": "blue"}),
        422,
        "validation_failed",
    )
    await problem(await api.admin.get("/v1/admin/regions?status=open"), 422, "validation_failed")
    await projections_ready(api)
    assert (await read(api.admin, "/v1/admin/regions"))["items"] == []


async def test_names_are_unique_within_their_parent(api: Api) -> None:
    first = await region(api, "eu-west-1")
    second = await region(api, "eu-west-2")
    await problem(
        await api.admin.post("/v1/admin/regions", json={"name": "eu-west-1"}), 409, "name_in_use"
    )
    c1 = await cluster(api, first, "c1")
    await cluster(api, second, "c1")  # another region: another scope
    body = {"region_id": first, "name": "c1", "architecture": "aarch64", "kind": "storage"}
    await problem(await api.admin.post("/v1/admin/clusters", json=body), 409, "name_in_use")

    c2 = await cluster(api, first, "c2")
    await problem(
        await api.admin.patch(f"/v1/admin/clusters/{c2}", json={"name": "c1"}), 409, "name_in_use"
    )
    await api.settled(await api.admin.patch(f"/v1/admin/clusters/{c1}", json={"name": "c9"}))
    await cluster(api, first, "c1")  # the old name was given up by the rename
    assert await names(api.admin, f"/v1/admin/clusters?region_id={first}") == ["c1", "c2", "c9"]

    host = {"cluster_id": c1, "hostname": "node1.dc1", "capacity": CAPACITY}
    await create(api, "/v1/admin/hosts", host)
    other = {**host, "cluster_id": c2}
    await problem(await api.admin.post("/v1/admin/hosts", json=other), 409, "name_in_use")


async def test_two_concurrent_creates_of_one_name_leave_one_region(api: Api) -> None:
    answers = await asyncio.gather(
        *(api.admin.post("/v1/admin/regions", json={"name": "race"}) for _ in range(5))
    )
    statuses = sorted(response.status for response in answers)
    assert statuses == [202, 409, 409, 409, 409]
    await api.wait_for(await api.platform.store.last_position())
    assert await names(api.admin, "/v1/admin/regions") == ["race"]


async def test_a_repeated_idempotency_key_creates_once(api: Api) -> None:
    headers = {"Idempotency-Key": "region-once"}
    first = await api.admin.post("/v1/admin/regions", json={"name": "r1"}, headers=headers)
    again = await api.admin.post("/v1/admin/regions", json={"name": "r1"}, headers=headers)
    assert first.status == again.status == 202
    assert again.headers["Idempotent-Replayed"] == "true"
    assert (await first.json())["resource_id"] == (await again.json())["resource_id"]


# -- permissions and versions ----------------------------------------------------------


async def test_tenants_are_refused_the_admin_side_and_operators_only_hosts(api: Api) -> None:
    region_id = await region(api)
    cluster_id = await cluster(api, region_id)
    owner = await api.tenant()
    for method, path in (
        ("post", "/v1/admin/regions"),
        ("get", "/v1/admin/regions"),
        ("get", f"/v1/admin/regions/{region_id}"),
        ("get", "/v1/admin/hosts"),
        ("post", "/v1/admin/flavors"),
        ("get", "/v1/admin/config"),
        ("patch", "/v1/admin/config"),
    ):
        response = await getattr(owner, method)(path, **({} if method == "get" else {"json": {}}))
        await problem(response, 403, "forbidden")
    reader = await api.sub_account(owner, ["read-only"])
    assert (await reader.get("/v1/regions")).status == 200
    assert (await reader.get("/v1/flavors")).status == 200

    staff = {"email": "ops@platform.example", "password": "operator-password-1"}
    await api.settled(await api.admin.post("/v1/admin/users", json=staff))
    operator = await api.login(staff["email"], staff["password"])
    assert (await operator.get(f"/v1/admin/regions/{region_id}")).status == 200
    await problem(
        await operator.post("/v1/admin/regions", json={"name": "ops-region"}), 403, "forbidden"
    )
    host = {"cluster_id": cluster_id, "hostname": "node1", "capacity": CAPACITY}
    host_id = (await api.settled(await operator.post("/v1/admin/hosts", json=host)))["resource_id"]
    await api.settled(await operator.post(f"/v1/admin/hosts/{host_id}/actions/maintenance"))


async def test_a_stale_if_match_is_refused_with_412(api: Api) -> None:
    region_id = await region(api)
    response = await api.admin.get(f"/v1/admin/regions/{region_id}")
    etag = response.headers["ETag"]
    assert etag == '"1"'
    path = f"/v1/admin/regions/{region_id}"
    await api.settled(
        await api.admin.patch(path, json={"description": "one"}, headers={"If-Match": etag})
    )
    stale = await api.admin.patch(path, json={"description": "two"}, headers={"If-Match": etag})
    await problem(stale, 412, "precondition_failed")
    assert (await read(api.admin, path))["description"] == "one"
    assert (await api.admin.get(path)).headers["ETag"] == '"2"'


# -- clusters and hosts ----------------------------------------------------------------


async def test_a_cluster_needs_an_existing_enabled_region(api: Api) -> None:
    body = {"name": "c1", "architecture": "x86_64", "kind": "compute"}
    missing = {**body, "region_id": "rgn-" + "1" * 26}
    await problem(
        await api.admin.post("/v1/admin/clusters", json=missing), 422, "validation_failed"
    )
    closed = await region(api, "closed", enabled=False)
    await problem(
        await api.admin.post("/v1/admin/clusters", json={**body, "region_id": closed}),
        409,
        "invalid_state",
    )
    open_id = await region(api, "open")
    for bad in ({"cpu_overcommit": 0.5}, {"architecture": "riscv64"}, {"kind": "gpu"}):
        response = await api.admin.post(
            "/v1/admin/clusters", json={**body, "region_id": open_id, **bad}
        )
        await problem(response, 422, "validation_failed")

    cluster_id = await cluster(api, open_id, architecture="aarch64")
    view = await read(api.admin, f"/v1/admin/clusters/{cluster_id}")
    assert view["cpu_overcommit"] == 4.0 and view["memory_overcommit"] == 1.0
    assert view["region_id"] == open_id and view["architecture"] == "aarch64"
    await api.settled(
        await api.admin.patch(f"/v1/admin/clusters/{cluster_id}", json={"cpu_overcommit": 8})
    )
    await api.settled(await api.admin.post(f"/v1/admin/clusters/{cluster_id}/actions/disable"))
    view = await read(api.admin, f"/v1/admin/clusters/{cluster_id}")
    assert (view["cpu_overcommit"], view["status"]) == (8.0, "disabled")
    assert await names(api.admin, "/v1/admin/clusters?architecture=x86_64") == []
    assert await names(api.admin, "/v1/admin/clusters?status=disabled&kind=compute") == ["c1"]


async def test_a_host_is_registered_relabelled_and_put_into_maintenance(api: Api) -> None:
    region_id = await region(api)
    cluster_id = await cluster(api, region_id)
    host_id = await create(
        api,
        "/v1/admin/hosts",
        {
            "cluster_id": cluster_id,
            "hostname": "gpu1.dc1.example",
            "capacity": CAPACITY,
            "labels": {"rack": "a1", "ssd": "yes"},
            "gpus": [{"address": "0000:3b:00.0", "model": "NVIDIA A100"}],
        },
    )
    path = f"/v1/admin/hosts/{host_id}"
    view = await read(api.admin, path)
    assert view["region_id"] == region_id and view["cluster_id"] == cluster_id
    assert view["capacity"] == CAPACITY and view["status"] == "enabled"
    assert view["gpus"] == [{"address": "0000:3b:00.0", "model": "NVIDIA A100"}]

    await api.settled(
        await api.admin.patch(
            path, json={"labels": {"ssd": None, "zone": "b"}, "capacity": {"vcpus": 96}}
        )
    )
    await api.settled(await api.admin.post(f"{path}/actions/maintenance"))
    view = await read(api.admin, path)
    assert view["labels"] == {"rack": "a1", "zone": "b"}
    assert view["capacity"]["vcpus"] == 96 and view["status"] == "maintenance"
    await problem(await api.admin.post(f"{path}/actions/maintenance"), 409, "invalid_state")
    await api.settled(await api.admin.post(f"{path}/actions/disable"))
    assert await names(api.admin, f"/v1/admin/hosts?region_id={region_id}&status=disabled") == [
        "gpu1.dc1.example"
    ]

    body = {"cluster_id": cluster_id, "hostname": "node2", "capacity": CAPACITY}
    for bad in (
        {"cluster_id": "cls-" + "1" * 26},
        {"hostname": "Node_2"},
        {"capacity": {**CAPACITY, "vcpus": 0}},
        {"gpus": [{"address": "3b:00.0", "model": "A100"}]},
        {"gpus": [{"address": "0000:3b:00.0", "model": "A"}] * 2},
        {"labels": {"Bad Key": "x"}},
    ):
        response = await api.admin.post("/v1/admin/hosts", json={**body, **bad})
        await problem(response, 422, "validation_failed")


# -- pools -----------------------------------------------------------------------------


async def test_ip_pools_check_their_ranges_and_gateway(api: Api) -> None:
    region_id = await region(api)
    body = {
        "region_id": region_id,
        "name": "public-v4",
        "cidr": "203.0.113.0/24",
        "ranges": [
            {"start": "203.0.113.100", "end": "203.0.113.199"},
            {"start": "203.0.113.10", "end": "203.0.113.19"},
        ],
        "gateway": "203.0.113.1",
        "purpose": "public",
    }
    pool_id = await create(api, "/v1/admin/ip-pools", body)
    view = await read(api.admin, f"/v1/admin/ip-pools/{pool_id}")
    assert view["ip_version"] == 4
    assert [r["start"] for r in view["ranges"]] == ["203.0.113.10", "203.0.113.100"]

    overlapping = [
        {"start": "203.0.113.10", "end": "203.0.113.50"},
        {"start": "203.0.113.50", "end": "203.0.113.60"},
    ]
    response = await api.admin.post(
        "/v1/admin/ip-pools", json={**body, "name": "other", "ranges": overlapping}
    )
    await problem(response, 422, "ip_ranges_overlap")
    patched = await api.admin.patch(f"/v1/admin/ip-pools/{pool_id}", json={"ranges": overlapping})
    await problem(patched, 422, "ip_ranges_overlap")
    for bad in (
        {"cidr": "203.0.113.1/24"},
        {"ranges": [{"start": "198.51.100.1", "end": "198.51.100.9"}]},
        {"ranges": [{"start": "203.0.113.9", "end": "203.0.113.2"}]},
        {"ranges": [{"start": "203.0.113.0", "end": "203.0.113.9"}]},
        {"ranges": [{"start": "2001:db8::1", "end": "2001:db8::9"}]},
        {"gateway": "203.0.113.150"},
        {"ip_version": 6},
    ):
        response = await api.admin.post("/v1/admin/ip-pools", json={**body, "name": "x", **bad})
        await problem(response, 422, "validation_failed")
    await problem(await api.admin.post("/v1/admin/ip-pools", json=body), 409, "name_in_use")

    v6 = {
        **body,
        "name": "public-v6",
        "cidr": "2001:db8:10::/64",
        "ranges": [{"start": "2001:db8:10::100", "end": "2001:db8:10::ffff"}],
        "gateway": "2001:db8:10::1",
        "ip_version": 6,
    }
    await create(api, "/v1/admin/ip-pools", v6)
    assert await names(api.admin, "/v1/admin/ip-pools?ip_version=6") == ["public-v6"]
    await api.settled(
        await api.admin.patch(
            f"/v1/admin/ip-pools/{pool_id}",
            json={
                "ranges": [{"start": "203.0.113.2", "end": "203.0.113.99"}],
                "gateway": "203.0.113.254",
            },
        )
    )
    view = await read(api.admin, f"/v1/admin/ip-pools/{pool_id}")
    assert view["ranges"] == [{"start": "203.0.113.2", "end": "203.0.113.99"}]
    assert view["gateway"] == "203.0.113.254"


async def test_image_pools_name_an_rbd_pool_or_a_directory(api: Api) -> None:
    region_id = await region(api)
    body = {"region_id": region_id, "name": "ceph", "backend": "rbd", "location": "images"}
    pool_id = await create(api, "/v1/admin/image-pools", body)
    local = {**body, "name": "local", "backend": "qcow2", "location": "/var/lib/scloud/images"}
    await create(api, "/v1/admin/image-pools", local)
    for bad in ({"backend": "qcow2", "location": "var/images"}, {"location": "a/b"}):
        response = await api.admin.post(
            "/v1/admin/image-pools", json={**body, "name": "bad", **bad}
        )
        await problem(response, 422, "validation_failed")
    await api.settled(
        await api.admin.patch(f"/v1/admin/image-pools/{pool_id}", json={"name": "rbd-images"})
    )
    assert await names(api.admin, "/v1/admin/image-pools?backend=rbd") == ["rbd-images"]
    await api.settled(await api.admin.post(f"/v1/admin/image-pools/{pool_id}/actions/disable"))
    assert await names(api.admin, "/v1/admin/image-pools?status=enabled") == ["local"]


# -- flavors ---------------------------------------------------------------------------


async def test_tenants_see_only_public_enabled_flavors(api: Api) -> None:
    base = {"vcpus": 2, "memory_mb": 4096, "disk": {"min_gb": 20, "max_gb": 200}}
    small = await create(api, "/v1/admin/flavors", {"name": "m1.small", **base})
    gpu = {
        "name": "g1.large",
        **base,
        "gpus": {"count": 1, "model": "NVIDIA A100"},
        "architecture": "x86_64",
    }
    gpu_id = await create(api, "/v1/admin/flavors", gpu)
    await create(api, "/v1/admin/flavors", {"name": "internal", **base, "public": False})
    await create(api, "/v1/admin/flavors", {"name": "old", **base, "enabled": False})
    view = await read(api.admin, f"/v1/admin/flavors/{gpu_id}")
    assert view["gpus"] == {"count": 1, "model": "NVIDIA A100"}
    assert view["disk"] == {"min_gb": 20, "max_gb": 200}

    owner = await api.tenant()
    assert await names(owner, "/v1/flavors") == ["g1.large", "m1.small"]
    # the orderable list has no status filter: asking for one is refused, not ignored
    refused = await owner.get("/v1/flavors?status=disabled")
    assert refused.status == 422 and (await refused.json())["code"] == "unknown_parameter"
    await api.settled(await api.admin.patch(f"/v1/admin/flavors/{small}", json={"public": False}))
    await api.settled(await api.admin.post(f"/v1/admin/flavors/{gpu_id}/actions/disable"))
    assert await names(owner, "/v1/flavors") == []
    assert len(await names(api.admin, "/v1/admin/flavors")) == 4

    for bad in (
        {"disk": {"min_gb": 300, "max_gb": 200}},
        {"vcpus": 0},
        {"gpus": {"count": 0, "model": "A100"}},
        {"architecture": "sparc"},
    ):
        response = await api.admin.post("/v1/admin/flavors", json={"name": "bad", **base, **bad})
        await problem(response, 422, "validation_failed")
    await problem(
        await api.admin.post("/v1/admin/flavors", json={"name": "m1.small", **base}),
        409,
        "name_in_use",
    )


# -- global configuration --------------------------------------------------------------


async def test_the_global_configuration_starts_at_defaults_and_changes_by_section(
    api: Api,
) -> None:
    await projections_ready(api)
    response = await api.admin.get("/v1/admin/config")
    assert response.headers["ETag"] == '"0"'
    defaults = await response.json()
    assert defaults["recycle_bin"] == {"retention_days": 7}
    assert defaults["login_policy"]["password_min_length"] == 12

    change = {
        "recycle_bin": {"retention_days": 30},
        "billing": {"default_currency": "EUR", "freeze_on_arrears": False},
        "mail": {
            "smtp_host": "smtp.example.com",
            "from_address": "cloud@example.com",
            "password_secret": "smtp-password",
        },
        "login_policy": {"lockout_threshold": 0},
        "quota_defaults": {"instances": 5},
    }
    answer = await api.settled(
        await api.admin.patch("/v1/admin/config", json=change, headers={"If-Match": '"0"'})
    )
    assert answer["resource_id"] == "cfg-" + "0" * 26
    response = await api.admin.get("/v1/admin/config")
    view = await response.json()
    assert view["recycle_bin"] == {"retention_days": 30}
    assert view["billing"] == {
        "default_currency": "EUR",
        "freeze_on_arrears": False,
        "grace_days": 3,
    }
    assert view["mail"]["smtp_host"] == "smtp.example.com"
    assert view["mail"]["password_secret"] == "smtp-password"
    assert view["mail"]["smtp_port"] == 587
    assert view["login_policy"]["lockout_threshold"] == 0
    assert view["quota_defaults"] == {"instances": 5}

    stale = await api.admin.patch(
        "/v1/admin/config", json={"recycle_bin": {"retention_days": 1}}, headers={"If-Match": '"0"'}
    )
    await problem(stale, 412, "precondition_failed")
    for bad in (
        {"mail": {"password": "hunter2"}},
        {"mail": {"password_secret": "Not A Name"}},
        {"quota_defaults": {"widgets": 1}},
        {"billing": {"default_currency": "euro"}},
        {"login_policy": {"password_min_length": 4}},
    ):
        await problem(await api.admin.patch("/v1/admin/config", json=bad), 422, "validation_failed")

    events = await api.platform.store.read_stream("cfg-" + "0" * 26)
    assert b"hunter2" not in b"".join(e.state for e in events)
    assert response.headers["ETag"] == f'"{len(events)}"'
