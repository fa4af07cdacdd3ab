"""Every id a body names is one the caller may use; a project-scoped sub-account reaches
only its projects, by id, by action and in lists.

A reference to another tenant's resource and one to nothing at all get the same 422, with
the body's field named in the problem's ``field``.
"""

from __future__ import annotations

from typing import Any

from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain.compute.image import Image
from domain.ids import new_id
from domain.metadata import Actor, ActorKind, CommandContext
from tests.api.compute_world import World, compute_world
from tests.api.conftest import Api, Caller
from tests.api.fixtures_world import heartbeat


async def refused(response: Any, field: str, value: str) -> str:
    """The 422 of a refused reference; its detail with the id taken out, to compare."""
    text = await response.text()
    assert response.status == 422, text
    problem = await response.json()
    assert problem["code"] == "validation_failed", problem
    assert problem["field"] == field, problem
    return str(problem["detail"]).replace(value, "ID")


async def both_refused(caller: Caller, path: str, body: dict[str, Any], field: str, theirs: str):
    """Another tenant's id and an id of nothing get one and the same answer."""
    prefix = theirs.split("-", 1)[0]
    nowhere = new_id(prefix)
    first = await refused(await caller.post(path, json={**body, field: theirs}), field, theirs)
    second = await refused(await caller.post(path, json={**body, field: nowhere}), field, nowhere)
    assert first == second


def instance_body(world: World, **extra: Any) -> dict[str, Any]:
    return {
        "name": "web",
        "region_id": world.region_id,
        "flavor_id": world.flavor_id,
        "image_id": world.image_id,
        **extra,
    }


async def private_image(api: Api, owner: Caller, world: World) -> str:
    """An available image of the tenant's own, in the world's region and pool.

    Made by a command of the tenant's through the platform's executor: how a tenant brings
    an image over HTTP (import, upload) is another test's business.
    """
    public = await api.platform.repository.get(world.image_id, Image)
    assert owner.tenant_id is not None
    tenant_id = owner.tenant_id

    async def decide(unit: UnitOfWork) -> Decided:
        image = Image(
            tenant_id=tenant_id,
            name="mine",
            region_id=public.region_id,
            pool_id=public.pool_id,
            location=public.location,
            disk_format="qcow2",
            architecture="x86_64",
            os_family="linux",
            min_disk_gb=1,
            kernel=None,
            initrd=None,
            cmdline=None,
        )
        unit.add(image)
        return Decided(resource_id=image.id)

    context = CommandContext(actor=Actor(ActorKind.USER, owner.user_id), tenant_id=tenant_id)
    outcome = await api.platform.executor.run(context, "compute:image:create", decide)
    await api.wait_for(outcome.position)
    assert outcome.resource_id is not None
    return outcome.resource_id


async def test_instances_name_only_the_callers_projects_groups_and_images(api: Api) -> None:
    world = await compute_world(api)
    victim = await api.tenant()
    project = (await api.settled(await victim.post("/v1/projects", json={"name": "p"})))[
        "resource_id"
    ]
    group = (
        await api.settled(
            await victim.post("/v1/server-groups", json={"name": "g", "policy": "affinity"})
        )
    )["resource_id"]
    prober = await api.tenant()
    body = instance_body(world)

    await both_refused(prober, "/v1/instances", body, "project_id", project)
    await both_refused(prober, "/v1/instances", body, "server_group_id", group)
    await both_refused(
        prober, "/v1/server-groups", {"name": "g", "policy": "affinity"}, "project_id", project
    )
    # Public inventory that does not exist is named by its field too.
    for field in ("region_id", "flavor_id", "image_id"):
        prefix = body[field].split("-", 1)[0]
        missing = new_id(prefix)
        await refused(
            await prober.post("/v1/instances", json={**body, field: missing}), field, missing
        )
    quote = await prober.post(
        "/v1/instances", json={**body, "project_id": project}, params={"validate_only": "true"}
    )
    await refused(quote, "project_id", project)

    # Nothing was made for the prober, in any of these attempts.
    for path in ("/v1/instances", "/v1/server-groups"):
        listed = await (await prober.get(path)).json()
        assert listed["items"] == [], listed


async def test_a_private_image_of_another_tenant_is_refused_at_create_and_quote(api: Api) -> None:
    world = await compute_world(api)
    victim = await api.tenant()
    image = await private_image(api, victim, world)
    prober = await api.tenant()
    body = instance_body(world)
    await both_refused(prober, "/v1/instances", body, "image_id", image)
    quote = await prober.post(
        "/v1/instances", json={**body, "image_id": image}, params={"validate_only": "true"}
    )
    await refused(quote, "image_id", image)


async def test_resize_subscribe_and_share_name_what_exists_and_is_theirs(api: Api) -> None:
    world = await compute_world(api)
    await heartbeat(api, world.host_id)
    victim = await api.tenant()
    theirs = (await api.settled(await victim.post("/v1/instances", json=instance_body(world))))[
        "resource_id"
    ]
    owner = await api.tenant()
    mine = (await api.settled(await owner.post("/v1/instances", json=instance_body(world))))[
        "resource_id"
    ]

    missing_flavor = new_id("flv")
    resize = await owner.post(
        f"/v1/instances/{mine}/actions/resize", json={"flavor_id": missing_flavor}
    )
    await refused(resize, "flavor_id", missing_flavor)

    await both_refused(
        owner, "/v1/billing/subscriptions", {"term": "monthly"}, "instance_id", theirs
    )

    image = await private_image(api, owner, world)
    nobody = new_id("tnt")
    share = await owner.post(f"/v1/images/{image}/actions/share", json={"tenant_id": nobody})
    await refused(share, "tenant_id", nobody)


async def test_staff_references_to_nothing_name_their_field(api: Api) -> None:
    missing = new_id("rgn")
    response = await api.admin.post(
        "/v1/admin/price-books", json={"name": "eu", "currency": "EUR", "region_id": missing}
    )
    await refused(response, "region_id", missing)


async def test_a_project_scoped_sub_account_reaches_only_its_projects(api: Api) -> None:
    world = await compute_world(api)
    await heartbeat(api, world.host_id)
    owner = await api.tenant()
    ours = (await api.settled(await owner.post("/v1/projects", json={"name": "ours"})))[
        "resource_id"
    ]
    other = (await api.settled(await owner.post("/v1/projects", json={"name": "other"})))[
        "resource_id"
    ]
    loose = (await api.settled(await owner.post("/v1/instances", json=instance_body(world))))[
        "resource_id"
    ]
    elsewhere = (
        await api.settled(
            await owner.post("/v1/instances", json=instance_body(world, project_id=other))
        )
    )["resource_id"]
    inside = (
        await api.settled(
            await owner.post("/v1/instances", json=instance_body(world, project_id=ours))
        )
    )["resource_id"]
    group = (
        await api.settled(
            await owner.post("/v1/server-groups", json={"name": "g", "policy": "soft-affinity"})
        )
    )["resource_id"]
    scoped = await api.sub_account(owner, ["operator", "billing"], projects=[ours])

    # Reads of one resource and actions: an instance in no project is as far out as one in
    # another project (it used to be readable and rebootable).
    for outside in (loose, elsewhere):
        assert (await scoped.get(f"/v1/instances/{outside}")).status == 404
        reboot = await scoped.post(f"/v1/instances/{outside}/actions/reboot", json={})
        assert reboot.status == 404, await reboot.text()
        stop = await scoped.post(f"/v1/instances/{outside}/actions/stop")
        assert stop.status == 404, await stop.text()
    assert (await scoped.get(f"/v1/server-groups/{group}")).status == 404
    delete = await scoped.client.delete(f"/v1/server-groups/{group}", headers=scoped.headers())
    assert delete.status == 404
    assert (await scoped.get(f"/v1/projects/{other}")).status == 404
    assert (await scoped.get(f"/v1/instances/{inside}")).status == 200
    assert (await scoped.get(f"/v1/projects/{ours}")).status == 200

    # Lists alike.
    listed = await (await scoped.get("/v1/instances")).json()
    assert [i["id"] for i in listed["items"]] == [inside]
    assert (await (await scoped.get("/v1/server-groups")).json())["items"] == []
    projects = await (await scoped.get("/v1/projects")).json()
    assert [p["id"] for p in projects["items"]] == [ours]

    # Creates: only in its projects, and into groups of its projects.
    body = instance_body(world)
    await refused(await scoped.post("/v1/instances", json=body), "project_id", "")
    await refused(
        await scoped.post("/v1/instances", json={**body, "project_id": other}), "project_id", other
    )
    await refused(
        await scoped.post("/v1/server-groups", json={"name": "s", "policy": "affinity"}),
        "project_id",
        "",
    )
    await refused(
        await scoped.post(
            "/v1/instances", json={**body, "project_id": ours, "server_group_id": group}
        ),
        "server_group_id",
        group,
    )
    await refused(
        await scoped.post(
            "/v1/billing/subscriptions", json={"instance_id": loose, "term": "monthly"}
        ),
        "instance_id",
        loose,
    )
    made = await scoped.post("/v1/instances", json={**body, "project_id": ours})
    assert made.status == 202, await made.text()


async def test_the_owner_still_reaches_resources_in_no_project(api: Api) -> None:
    owner = await api.tenant()
    group = await create_group(api, owner)
    assert (await owner.get(f"/v1/server-groups/{group}")).status == 200
    unscoped = await api.sub_account(owner, ["operator"])
    assert (await unscoped.get(f"/v1/server-groups/{group}")).status == 200


async def create_group(api: Api, owner: Caller) -> str:
    response = await owner.post("/v1/server-groups", json={"name": "g", "policy": "affinity"})
    return str((await api.settled(response))["resource_id"])
