"""Image imports and exports: the host chosen for them, what its outcome means, deadlines.

An import (from a URL, or an admin's file in the pool's ``incoming`` directory) and an
export (an instance's disk flattened) both make an Image in state ``importing`` with one
step on one healthy host of the pool's region; that host's outcome makes it ``available``
(with its size and SHA-256) or ``error`` with the cause, and a deadline ends a step that
never reports.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from api.services.compute import Health
from api.services.executor import CommandExecutor, Decided
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.compute.image import (
    IMPORTING,
    INCOMING,
    UPLOADING,
    Image,
    ImagePathImportForbidden,
    ImageSourceInvalid,
    ImageSourceNotPublic,
)
from domain.compute.instance import STOPPED, Instance
from domain.errors import DomainError, InvalidState, NotFound, ValidationFailed
from domain.ids import new_id
from domain.inventory.host import DISABLED, Host
from domain.inventory.image_pool import QCOW2, ImagePool
from domain.metadata import Actor, ActorKind, CommandContext
from gateways.bus.hostwire import HostOutcome
from gateways.eventstore.records import ConcurrencyConflict
from gateways.public_addresses import NotPublic, Resolve, check_public, resolve

log = logging.getLogger(__name__)
MAX_URL_LENGTH = 2048


def check_source_url(url: str) -> str:
    """An http(s) URL with a host and no credentials (they would stay in the events)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ImageSourceInvalid(f"{url!r} is not a URL", field="source.url") from None
    if len(url) > MAX_URL_LENGTH or not url.isprintable():
        raise ImageSourceInvalid("the URL is too long or not printable", field="source.url")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ImageSourceInvalid(
            "images are imported from http:// or https:// URLs with a host", field="source.url"
        )
    if parts.username is not None or parts.password is not None or port == 0:
        raise ImageSourceInvalid("the URL must not carry credentials or port 0", field="source.url")
    return url


async def check_public_source(url: str, resolver: Resolve = resolve) -> None:
    """Refuse a URL whose host resolves to any non-public address (hosts check it again at
    every connection: this is the clear 422, not the defence)."""
    parts = urlsplit(url)
    try:
        await check_public(parts.hostname or "", parts.port or 443, resolver)
    except NotPublic as refused:
        raise ImageSourceNotPublic(
            f"the URL's host resolves to {refused.address}, a {refused.reason} address: "
            "tenants import images from public addresses only",
            field="source.url",
            address=str(refused.address),
        ) from None
    except OSError:
        raise ImageSourceInvalid(f"{parts.hostname} does not resolve", field="source.url") from None


def check_source_path(pool: ImagePool, path: str, *, staff: bool) -> str:
    """A file in the pool's incoming directory; only staff import from host paths."""
    if not staff:
        raise ImagePathImportForbidden(
            "tenants import images from URLs; a path on the hosts is for platform staff"
        )
    incoming = PurePosixPath(pool.location) / INCOMING
    candidate = PurePosixPath(path)
    if (
        not candidate.is_absolute()
        or ".." in candidate.parts
        or str(candidate) != path
        or not candidate.is_relative_to(incoming)
        or candidate == incoming
    ):
        raise ImageSourceInvalid(
            f"{path!r} is not a file in the image pool's incoming directory {incoming}/",
            field="source.path",
            allowed_directory=str(incoming),
        )
    return path


async def qcow2_pool(unit: UnitOfWork, pool_id: str) -> ImagePool:
    pool = await unit.find(pool_id, ImagePool)
    if pool is None:
        raise ValidationFailed(f"{pool_id} is not an image pool", field="pool_id")
    if not pool.enabled:
        raise InvalidState(f"image pool {pool.name} is disabled", image_pool_id=pool.id)
    if pool.backend != QCOW2:
        raise ValidationFailed(
            "images are imported into qcow2 directory pools only", field="pool_id"
        )
    return pool


async def importing_host(
    unit: UnitOfWork, region_id: str, host_ids: Sequence[str], health: Mapping[str, Health]
) -> Host:
    """One enabled, healthy host of the region: the one with the fewest instances."""
    chosen: Host | None = None
    for host_id in host_ids:
        if not health.get(host_id, Health(healthy=False)).healthy:
            continue
        host = await unit.get(host_id, Host)
        if host.region_id != region_id or host.down or host.status == DISABLED:
            continue
        if chosen is None or (len(host.claims), host.id) < (len(chosen.claims), chosen.id):
            chosen = host
    if chosen is None:
        raise InvalidState(
            f"no healthy host in region {region_id} can import the image", region_id=region_id
        )
    return chosen


async def import_image(
    unit: UnitOfWork,
    *,
    tenant_id: str | None,
    staff: bool,
    name: str,
    pool_id: str,
    url: str | None,
    path: str | None,
    source_format: str | None,
    architecture: str,
    os_family: str,
    min_disk_gb: int,
    host_ids: Sequence[str],
    health: Mapping[str, Health],
) -> Decided:
    pool = await qcow2_pool(unit, pool_id)
    if (url is None) == (path is None):
        raise ImageSourceInvalid("give exactly one of source.url and source.path", field="source")
    source: dict[str, str] = {}
    if url is not None:
        source["url"] = check_source_url(url)
    else:
        source["path"] = check_source_path(pool, path or "", staff=staff)
    if source_format is not None:
        source["format"] = source_format
    host = await importing_host(unit, pool.region_id, host_ids, health)
    image = Image.incoming(
        tenant_id,
        name,
        pool.region_id,
        pool.id,
        status=IMPORTING,
        source=source,
        architecture=architecture,
        os_family=os_family,
        min_disk_gb=min_disk_gb,
    )
    image.start_import(host.id, new_id("stp"))
    unit.add(image)
    return Decided(resource_id=image.id)


async def receive_upload(
    unit: UnitOfWork,
    image_id: str,
    size_bytes: int,
    sha256: str,
    host_ids: Sequence[str],
    health: Mapping[str, Health],
) -> Decided:
    """The staged upload goes to one healthy host of the pool's region, to convert it."""
    image = await unit.get(image_id, Image)
    host = await importing_host(unit, image.region_id, host_ids, health)
    image.upload_received(size_bytes, sha256, host.id, new_id("stp"))
    return Decided(resource_id=image.id)


async def export_image(unit: UnitOfWork, instance: Instance, name: str) -> Decided:
    """A stopped instance's disk, flattened on its host, as a private image of its tenant.

    The step goes to the host's command stream on the instance's own lane, so a start sent
    after it is applied only once the disk has been copied.
    """
    if instance.status != STOPPED or instance.host_id is None or instance.step_id is not None:
        raise InvalidState(
            f"only a stopped instance's disk is exported (it is {instance.status})",
            instance_id=instance.id,
        )
    origin = await unit.get(instance.image_id, Image)
    pool = await qcow2_pool(unit, origin.pool_id)
    image = Image.incoming(
        instance.tenant_id,
        name,
        pool.region_id,
        pool.id,
        status=IMPORTING,
        source={"instance_id": instance.id},
        architecture=origin.architecture,
        os_family=origin.os_family,
        min_disk_gb=instance.disk_gb,
    )
    image.start_import(instance.host_id, new_id("stp"))
    unit.add(image)
    return Decided(resource_id=image.id)


MAX_CAUSE = 200


def short_cause(error: str | None) -> str:
    """The host's cause as the tenant sees it: one short line (hosts already give a code
    and a short cause; this bounds what an older or faulty host sends)."""
    text = " ".join((error or "the host reported a failure").split())
    return text if len(text) <= MAX_CAUSE else text[: MAX_CAUSE - 1] + "…"


async def image_reported(executor: CommandExecutor, outcome: HostOutcome) -> None:
    """The host's outcome of an import or export step: the image is available, or in error."""
    image_id = outcome.image_id
    if image_id is None:
        return
    try:
        tenant_id = (await executor.repository.get(image_id, Image)).tenant_id
    except NotFound:
        return  # not an image of this platform (a shared NATS carries others' outcomes)

    async def decide(unit: UnitOfWork) -> Decided:
        image = await unit.get(image_id, Image)
        report = outcome.image
        if outcome.host_id == image.host_id:
            image.host_reported(
                outcome.step_id,
                location=None if report is None else report.location,
                size_bytes=None if report is None else report.size_bytes,
                virtual_size_bytes=None if report is None else report.virtual_size_bytes,
                checksum=None if report is None else report.sha256,
                error=None if outcome.ok else short_cause(outcome.error),
            )
        return Decided(resource_id=image.id)

    context = CommandContext(
        actor=Actor(ActorKind.HOST, outcome.host_id),
        command_id=f"outcome:{outcome.step_id}",
        correlation_id=outcome.step_id,
        causation_id=outcome.step_id,
        tenant_id=tenant_id,
    )
    try:
        await executor.run(context, "compute:image:outcome", decide, tenant_queue=False)
    except ConcurrencyConflict:
        raise  # not decided at all: the ingester leaves it unacknowledged, to come again
    except DomainError as error:
        log.warning("image outcome %s refused: %s", outcome.step_id, error)


async def overdue_images(executor: CommandExecutor, schema: str, now: datetime) -> list[str]:
    rows = await executor.repository.store.pool.fetch(
        f"SELECT resource_id FROM {schema}.resource_documents "  # noqa: S608 - checked schema
        "WHERE kind = 'img' AND view->>'status' = ANY($1::text[]) "
        "AND (view->>'deadline')::timestamptz < $2",
        [IMPORTING, UPLOADING],
        now,
    )
    return [row[0] for row in rows]


async def expire_image(executor: CommandExecutor, image_id: str, now: datetime) -> bool:
    """End an import whose host never reported, if it is still overdue; True if it was."""
    expired = False

    async def decide(unit: UnitOfWork) -> Decided:
        nonlocal expired
        expired = (await unit.get(image_id, Image)).time_out(now)
        return Decided(resource_id=image_id)

    image = await executor.repository.get(image_id, Image)
    context = CommandContext(
        actor=Actor.system("deadlines"),
        tenant_id=image.tenant_id,
        command_id=f"timeout:{image_id}:{image.deadline}",
    )
    try:
        await executor.run(context, "compute:image:timeout", decide)
    except DomainError as error:
        log.warning("timing out %s: %s", image_id, error)
    return expired


async def expire_overdue_images(executor: CommandExecutor, schema: str) -> None:
    now = clock.now()
    for image_id in await overdue_images(executor, schema, now):
        await expire_image(executor, image_id, now)
