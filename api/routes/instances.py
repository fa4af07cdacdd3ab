"""Instances: create (placed and claimed at once), read, drive their power, reinstall,
reset a password, open the console; migrate them (operators)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from aiohttp import web

from api.call import Call, json_response
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import compute, console, guest, migration, quotes, references, subscriptions
from api.services.backpressure import Overloaded
from api.services.executor import Decided
from api.services.unit_of_work import UnitOfWork
from domain.compute.instance import Instance
from domain.errors import DomainError, ValidationFailed
from domain.ids import new_id
from domain.inventory.host import Host
from gateways.guest_passwords import HashingFailed, sha512_crypt
from gateways.waiting import wait_any

router = Router()

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9]{0,11}-[0-9a-hjkmnp-tv-z]{26}$")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]


class CreateInstances(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Name
    region_id: Id
    flavor_id: Id
    image_id: Id
    disk_gb: Annotated[int, msgspec.Meta(ge=1, le=65536)] | None = None
    count: Annotated[int, msgspec.Meta(ge=1, le=compute.MAX_BATCH)] = 1
    preemptible: bool = False
    project_id: Id | None = None
    server_group_id: Id | None = None
    """Place into this server group, under its policy."""


class CreateQuery(msgspec.Struct, kw_only=True):
    validate_only: bool = False
    """Answer the price quote (on demand per hour, and each prepaid term); create nothing."""


class CreatedInstances(msgspec.Struct, kw_only=True):
    operation_id: str
    resource_id: str | None
    position: int
    instance_ids: list[str]


class InstanceView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str
    project_id: str | None
    name: str
    region_id: str
    flavor_id: str
    image_id: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    preemptible: bool
    server_group_id: str | None
    status: str
    host_id: str | None
    deadline: str | None
    error: str | None
    migration: dict[str, str | bool] | None = None
    """While migrating: from_host_id, to_host_id, live and the status it resumes."""


class InstancePage(msgspec.Struct, kw_only=True):
    items: list[InstanceView]
    next_page_token: str | None


class InstanceQuery(ListQuery, kw_only=True):
    status: str | None = None
    name: str | None = None
    region_id: str | None = None


class Reboot(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    hard: bool = False


class Resize(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    flavor_id: Id
    """The new flavor; the instance must be stopped (it runs at the new size from its next
    start) and its disk must fit the flavor's range."""


class Reinstall(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    image_id: Id | None = None
    """The image to rebuild the root disk from; its current one when left out. It must be
    usable by the tenant, in the instance's region, for its architecture and fit its disk."""


Password = Annotated[
    str, msgspec.Meta(min_length=8, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
User = Annotated[str, msgspec.Meta(pattern=r"^[a-z_][a-z0-9_-]{0,31}$")]


class ResetPassword(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    password: Password
    """Stored and sent to the host only as its SHA-512 crypt(3) hash."""
    user: User = "root"


class Migrate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    live: bool
    """Live keeps the guest running; cold stops a running one, moves it and starts it."""
    host_id: Id | None = None
    """The target host, checked by the scheduler's filters; the scheduler's pick if left out."""


class MigrationAccepted(Accepted, kw_only=True):
    from_host_id: str
    to_host_id: str


class ConsoleView(msgspec.Struct, kw_only=True):
    instance_id: str
    protocol: str
    host_id: str
    hostname: str
    """The hypervisor the display is on."""
    listen: str
    """The address the display listens on, as the host reports it."""
    port: int
    token: str
    """Signed, short-lived: it names this instance's display and nothing else."""
    expires_at: str


def _tenant(call: Call) -> str:
    if call.me.tenant_id is None:
        raise ValidationFailed("instances belong to a tenant; staff act through /v1/admin")
    return call.me.tenant_id


@router.route(
    "POST",
    "/v1/instances",
    summary="Create instances from an image and a flavor",
    action="compute:instance:create",
    body=CreateInstances,
    query=CreateQuery,
    response=CreatedInstances,
    status=202,
    tags=("instances",),
)
async def create_instances(call: Call) -> web.Response:
    body: CreateInstances = call.body
    tenant_id = _tenant(call)
    projects = call.me.projects
    if call.query.validate_only:
        unit = UnitOfWork(call.platform.repository)
        scope = references.Scope(tenant_id=tenant_id, projects=projects)
        await references.project(unit, scope, body.project_id)
        answer = await quotes.instances_quote(
            unit,
            tenant_id,
            body.region_id,
            body.flavor_id,
            body.image_id,
            body.disk_gb,
            body.count,
        )
        return json_response(answer)
    platform = call.platform
    await _unless_overloaded(call, tenant_id)
    hosts, health = await platform.hosts_for_placing()

    async def decide(unit: UnitOfWork) -> Decided:
        return await compute.create_instances(
            unit,
            tenant_id=tenant_id,
            project_id=body.project_id,
            name=body.name,
            flavor_id=body.flavor_id,
            image_id=body.image_id,
            region_id=body.region_id,
            disk_gb=body.disk_gb,
            count=body.count,
            preemptible=body.preemptible,
            host_ids=hosts,
            health=health,
            server_group_id=body.server_group_id,
            projects=projects,
        )

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


async def _unless_overloaded(call: Call, tenant_id: str) -> None:
    """429 while builds are behind, except for a retry of a create already accepted: that
    one is answered what it was answered the first time."""
    platform = call.platform
    try:
        await platform.build_backpressure.check(platform.store)
    except Overloaded:
        command_id = call.context(tenant_id).command_id
        if command_id is None or await platform.store.find_command(command_id) is None:
            raise


@router.route(
    "GET",
    "/v1/instances",
    summary="List instances",
    action="compute:instance:read",
    query=InstanceQuery,
    response=InstancePage,
    tags=("instances",),
)
async def list_instances(call: Call) -> web.Response:
    return await list_kind(
        call,
        "i",
        call.query,
        tenant_id=_tenant(call),
        projects=call.me.projects,
        filters=("status", "name", "region_id"),
    )


MAX_WAIT_SECONDS = 60.0
SETTLED = frozenset({"error", "recycled"})
"""Statuses a wait for another one ends at too: the instance will not get there by itself."""


class InstanceRead(msgspec.Struct, kw_only=True):
    as_of: str | None = None
    """The instance as it was at this time (RFC 3339), from its events."""
    until: Annotated[str, msgspec.Meta(pattern="^[a-z_]{1,20}$")] | None = None
    """Long-poll: answer once the instance has this status (or ended in error)."""
    wait: Annotated[float, msgspec.Meta(ge=0, le=MAX_WAIT_SECONDS)] = 0.0
    """Seconds ``until`` waits at most; then the instance is answered as it is."""


@router.route(
    "GET",
    "/v1/instances/{id}",
    summary="One instance; ?until=running&wait=N long-polls until it gets there",
    action="compute:instance:read",
    query=InstanceRead,
    response=InstanceView,
    kind="i",
    tags=("instances",),
)
async def get_instance(call: Call) -> web.Response:
    query: InstanceRead = call.query
    instance_id = call.request.match_info["id"]
    document = await call.document(instance_id, "i", "compute:instance:read")
    if query.until is not None and query.wait > 0:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + query.wait
        async with call.platform.store.appended() as appended:
            while _waiting(document.view.get("status"), query.until):
                left = deadline - loop.time()
                if left <= 0:
                    break
                appended.clear()
                # The read model follows the append a moment later: look again soon.
                await wait_any(appended, timeout=min(left, 0.2))
                document = await call.document(instance_id, "i", "compute:instance:read")
    return await call.one(document)


def _waiting(status: object, until: str) -> bool:
    return status != until and status not in SETTLED


Step = Callable[[UnitOfWork, Instance], Awaitable[None]]


async def _act(call: Call, step: Step) -> web.Response:
    tenant_id = _tenant(call)
    instance_id = call.request.match_info["id"]
    document = await call.document(instance_id, "i", call.endpoint.action or "")
    del document  # existence and tenant are checked; the aggregate decides the rest

    options = call.body
    password_hash = ""
    if isinstance(options, ResetPassword):
        password_hash = await _hashed(call, options)

    async def decide(unit: UnitOfWork) -> Decided:
        instance = await compute.instance_of(unit, instance_id, tenant_id)
        if isinstance(options, Reboot):
            await _reboot(unit, instance, options.hard)
        elif isinstance(options, Resize):
            await subscriptions.not_prepaid(unit, instance.id)
            await compute.resize_instance(unit, instance, options.flavor_id)
        elif isinstance(options, Reinstall):
            await guest.reinstall_instance(unit, instance, options.image_id)
        elif isinstance(options, ResetPassword):
            guest.reset_password(instance, options.user, password_hash)
        else:
            await step(unit, instance)
        return Decided(resource_id=instance.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


def _action(verb: str, summary: str, step: Step, body: type[msgspec.Struct] | None = None) -> None:
    # Registered before renaming: the route table keeps the function object itself.
    @router.route(
        "POST",
        f"/v1/instances/{{id}}/actions/{verb}",
        summary=summary,
        action=f"compute:instance:{verb}",
        body=body,
        response=Accepted,
        status=202,
        kind="i",
        tags=("instances",),
    )
    async def handler(call: Call) -> web.Response:
        return await _act(call, step)

    handler.__name__ = handler.__qualname__ = f"{verb}_instance"


async def _start(unit: UnitOfWork, instance: Instance) -> None:
    instance.start(new_id("stp"))
    await compute.claim_again(unit, instance)


async def _stop(unit: UnitOfWork, instance: Instance) -> None:
    instance.stop(new_id("stp"))


async def _reboot(unit: UnitOfWork, instance: Instance, hard: bool = False) -> None:
    instance.reboot(new_id("stp"), hard=hard)


async def _delete(unit: UnitOfWork, instance: Instance) -> None:
    instance.delete(new_id("stp"))


async def _restore(unit: UnitOfWork, instance: Instance) -> None:
    instance.restore()


async def _purge(unit: UnitOfWork, instance: Instance) -> None:
    instance.purge()
    await compute.release_host(unit, instance, "purged")
    await compute.leave_group(unit, instance)
    await compute.release_quota(unit, instance)


_action("start", "Start a stopped instance", _start)
_action("stop", "Stop an instance (ACPI, then power off after a grace period)", _stop)
_action("reboot", "Reboot an instance", _reboot, Reboot)
_action("delete", "Delete an instance to the recycle bin", _delete)
_action("restore", "Restore an instance from the recycle bin", _restore)
_action("purge", "Delete an instance for good, releasing its quota", _purge)


async def _not_without_body(unit: UnitOfWork, instance: Instance) -> None:
    raise AssertionError("resize always has its body")  # pragma: no cover


_action(
    "resize",
    "Resize to another flavor: a stopped one at its next start; a running one live"
    " (vCPU and memory hot-plug) when it only grows within the room its guest was defined"
    " with, otherwise stopped and started again at the new size",
    _not_without_body,
    Resize,
)

_action(
    "reinstall",
    "Rebuild the system disk from an image (its own or another); ends running or stopped as it was",
    _not_without_body,
    Reinstall,
)
_action(
    "reset-password",
    "Set a user's password in the running guest (sent as a SHA-512 crypt hash only)",
    _not_without_body,
    ResetPassword,
)


class HashingUnavailable(DomainError):
    """The API's machine cannot make crypt hashes (openssl is missing): try another replica."""

    code = "password_hashing_unavailable"
    status = 503


async def _hashed(call: Call, options: ResetPassword) -> str:
    """The password's crypt hash; the request is fingerprinted on a keyed digest instead.

    The idempotency record keeps a fingerprint of the body: of the plaintext, that would be
    a fast hash of the password in the database. A keyed one says as much about repeats.
    """
    try:
        hashed = await sha512_crypt(options.password)
    except HashingFailed as error:
        raise HashingUnavailable(f"the password cannot be hashed here: {error}") from None
    key = call.platform.tokens.purpose_key("password-fingerprint")
    digest = hmac.new(key, options.password.encode(), hashlib.sha256).hexdigest()
    call.body = msgspec.structs.replace(options, password=digest)
    return hashed


@router.route(
    "GET",
    "/v1/instances/{id}/console",
    summary="Where the running instance's VNC console is, with a short-lived signed token",
    action="compute:instance:console",
    response=ConsoleView,
    kind="i",
    tags=("instances",),
)
async def get_console(call: Call) -> web.Response:
    instance_id = call.request.match_info["id"]
    document = await call.document(instance_id, "i", "compute:instance:console")
    instance = await call.platform.repository.get(document.resource_id, Instance)
    endpoint = instance.vnc()
    host = await call.platform.repository.get(endpoint["host_id"], Host)
    token, ticket = console.ticket_for(
        call.platform.tokens, instance.id, host.id, int(endpoint["port"])
    )
    body = ConsoleView(
        instance_id=instance.id,
        protocol="vnc",
        host_id=host.id,
        hostname=host.hostname,
        listen=str(endpoint["listen"]),
        port=int(endpoint["port"]),
        token=token,
        expires_at=datetime.fromtimestamp(ticket.expires_at, UTC).isoformat(),
    )
    return web.Response(
        body=msgspec.json.encode(body),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


@router.route(
    "POST",
    "/v1/admin/instances/{id}/actions/migrate",
    summary="Migrate an instance to another host (live or cold), chosen or checked by the "
    "scheduler",
    action="admin:instance:migrate",
    body=Migrate,
    response=MigrationAccepted,
    status=202,
    kind="i",
    tags=("instances", "admin"),
)
async def migrate_instance(call: Call) -> web.Response:
    body: Migrate = call.body
    instance_id = call.request.match_info["id"]
    document = await call.document(instance_id, "i", "admin:instance:migrate")
    platform = call.platform
    hosts, health = await platform.hosts_for_placing()

    async def decide(unit: UnitOfWork) -> Decided:
        return await migration.migrate_instance(
            unit, instance_id, live=body.live, host_id=body.host_id, host_ids=hosts, health=health
        )

    return call.accepted(await call.execute(decide, tenant_id=document.tenant_id))
