"""Images: public ones published by the platform, private ones of a tenant, and sharing."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from aiohttp import web

from api.call import Call
from api.listing import Accepted, ListQuery, list_kind
from api.routing import Router
from api.services import compute, images, references
from api.services.executor import Decided
from api.services.unit_of_work import PreconditionFailed, UnitOfWork, other_tenants
from api.text import Body, Name
from api.uploads import OCTET_STREAM, received
from domain.compute.image import (
    MAX_UPLOAD_BYTES,
    Image,
    ImageUploadMismatch,
    check_pool_file,
)
from domain.errors import DomainError, InvalidState, NotFound, ValidationFailed
from domain.inventory.image_pool import ImagePool
from gateways.bus.image_uploads import ImageUploads

router = Router()

Id = Annotated[str, msgspec.Meta(pattern=r"^[a-z][a-z0-9]{0,11}-[0-9a-hjkmnp-tv-z]{26}$")]
Path = Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=r"^[^\x00\n]+$")]


class RegisterImage(Body, kw_only=True, forbid_unknown_fields=True):
    """An image file already in a pool (uploaded by the operator or exported from a disk)."""

    name: Name
    pool_id: Id
    location: Path
    """Path (qcow2 directory pools) or ``pool/image`` (rbd pools) inside the image pool."""
    format: Literal["qcow2", "raw"] = "qcow2"
    architecture: Literal["x86_64", "aarch64"] = "x86_64"
    os_family: Annotated[str, msgspec.Meta(min_length=1, max_length=40)] = "linux"
    min_disk_gb: Annotated[int, msgspec.Meta(ge=0, le=65536)] = 1
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


Architecture = Literal["x86_64", "aarch64"]
OsFamily = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
MinDisk = Annotated[int, msgspec.Meta(ge=0, le=65536)]


class ImageSourceBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Exactly one: an http(s) URL, or (platform staff only) a file in the pool's
    ``incoming`` directory on its hosts."""

    url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)] | None = None
    path: Path | None = None


class ImportImage(Body, kw_only=True, forbid_unknown_fields=True):
    """Fetch an image into a qcow2 image pool; it is ``importing`` until a host of the pool's
    region reports the converted file (``available``, with its size and SHA-256) or a cause
    (``error``)."""

    name: Name
    pool_id: Id
    source: ImageSourceBody
    architecture: Architecture = "x86_64"
    os_family: OsFamily = "linux"
    min_disk_gb: MinDisk = 1
    format: Literal["qcow2", "raw"] | None = None
    """What the source is; left out, the host probes it. Stored as qcow2 either way."""


class ExportImage(Body, kw_only=True, forbid_unknown_fields=True):
    name: Name


class ShareImage(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    tenant_id: Id


class ImageView(msgspec.Struct, kw_only=True):
    id: str
    tenant_id: str | None
    name: str
    visibility: str
    region_id: str
    pool_id: str
    format: str
    architecture: str
    os_family: str
    min_disk_gb: int
    direct_kernel_boot: bool
    shared_with: list[str]
    status: str
    """``uploading`` (waiting for ``PUT …/file``), ``importing``, ``available``, ``error``
    or ``deleted``."""
    source: dict[str, str] | None = None
    size_bytes: int | None = None
    virtual_size_bytes: int | None = None
    checksum: str | None = None
    """SHA-256 of the image file, as its host measured it."""
    error: str | None = None
    deadline: str | None = None


class ImagePage(msgspec.Struct, kw_only=True):
    items: list[ImageView]
    next_page_token: str | None


class ImageQuery(ListQuery, kw_only=True):
    name: str | None = None
    status: str | None = None


async def _register(unit: UnitOfWork, tenant_id: str | None, body: RegisterImage) -> Decided:
    pool = await unit.find(body.pool_id, ImagePool)
    if pool is None:
        raise ValidationFailed(f"{body.pool_id} is not an image pool", field="pool_id")
    for field, path in (
        ("location", body.location),
        ("kernel", body.kernel),
        ("initrd", body.initrd),
    ):
        if path is not None:
            check_pool_file(pool.backend, pool.location, path, field)
    image = Image(
        tenant_id=tenant_id,
        name=body.name,
        region_id=pool.region_id,
        pool_id=pool.id,
        location=body.location,
        disk_format=body.format,
        architecture=body.architecture,
        os_family=body.os_family,
        min_disk_gb=body.min_disk_gb,
        kernel=body.kernel,
        initrd=body.initrd,
        cmdline=body.cmdline,
    )
    unit.add(image)
    return Decided(resource_id=image.id)


@router.route(
    "POST",
    "/v1/admin/images",
    summary="Publish a public image from a file in an image pool",
    action="admin:image:create",
    body=RegisterImage,
    response=Accepted,
    status=202,
    tags=("images",),
)
async def publish_image(call: Call) -> web.Response:
    body: RegisterImage = call.body

    async def decide(unit: UnitOfWork) -> Decided:
        return await _register(unit, None, body)

    return call.accepted(await call.execute(decide, tenant_id=None))


class CreateImage(Body, kw_only=True, forbid_unknown_fields=True):
    """A private image whose bytes the tenant uploads next (``PUT /v1/images/{id}/file``):
    of exactly ``size_bytes`` bytes with this SHA-256, within an hour."""

    name: Name
    pool_id: Id
    size_bytes: Annotated[int, msgspec.Meta(ge=1, le=MAX_UPLOAD_BYTES)]
    sha256: Annotated[str, msgspec.Meta(pattern=r"^[0-9a-fA-F]{64}$")]
    format: Literal["qcow2", "raw"] | None = None
    """What the bytes are; left out, the host probes them. Stored as qcow2 either way."""
    architecture: Architecture = "x86_64"
    os_family: OsFamily = "linux"
    min_disk_gb: MinDisk = 1


@router.route(
    "POST",
    "/v1/images",
    summary="Create a private image to upload (its bytes follow with PUT /v1/images/{id}/file)",
    action="compute:image:create",
    body=CreateImage,
    response=Accepted,
    status=202,
    tags=("images",),
)
async def create_image(call: Call) -> web.Response:
    body: CreateImage = call.body
    tenant_id = call.me.tenant_id
    if tenant_id is None:
        raise ValidationFailed("staff publish public images at /v1/admin/images")

    async def decide(unit: UnitOfWork) -> Decided:
        pool = await images.qcow2_pool(unit, body.pool_id)
        image = Image.for_upload(
            tenant_id,
            body.name,
            pool.region_id,
            pool.id,
            size_bytes=body.size_bytes,
            sha256=body.sha256,
            source_format=body.format,
            architecture=body.architecture,
            os_family=body.os_family,
            min_disk_gb=body.min_disk_gb,
        )
        unit.add(image)
        return Decided(resource_id=image.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "PUT",
    "/v1/images/{id}/file",
    summary="Upload the bytes of an image created for an upload (once, its exact size and SHA-256)",
    action="compute:image:create",
    upload=OCTET_STREAM,
    response=Accepted,
    status=202,
    kind="img",
    tags=("images",),
)
async def upload_image_file(call: Call) -> web.Response:
    image_id = call.request.match_info["id"]
    document = await call.document(image_id, "img", "compute:image:create")
    platform = call.platform
    image = await platform.repository.get(image_id, Image)
    wanted = call.if_match()
    if wanted is not None and wanted != image.version:
        # Before the bytes: a stale If-Match must not cost the caller the whole upload.
        raise PreconditionFailed(
            f"{image_id} is at version {image.version}, not {wanted}", resource_id=image_id
        )
    expected = image.expected_upload
    if expected is None:
        raise InvalidState("the image is not waiting for an upload", image_id=image_id)
    staging = platform.settings.state_dir / "uploads"
    async with received(call.request, expected[0], staging) as upload:
        if (upload.size, upload.sha256) != expected:
            raise ImageUploadMismatch(
                f"the body is {upload.size} bytes with SHA-256 {upload.sha256}; the image "
                f"takes {expected[0]} bytes with SHA-256 {expected[1]}",
                field="sha256",
            )
        # Staged before the command: the host told to import finds the bytes there.
        await ImageUploads(platform.js).stage(image_id, upload.file)
    hosts, health = await platform.hosts_for_placing()

    async def decide(unit: UnitOfWork) -> Decided:
        return await images.receive_upload(
            unit, image_id, upload.size, upload.sha256, hosts, health
        )

    return call.accepted(await call.execute(decide, tenant_id=document.tenant_id))


async def _import(call: Call, body: ImportImage, tenant_id: str | None) -> web.Response:
    staff = tenant_id is None
    if body.source.url is not None and not staff:
        # A tenant's URL must point at a public address: hosts are not a way inside.
        await images.check_public_source(images.check_source_url(body.source.url))
    platform = call.platform
    hosts, health = await platform.hosts_for_placing()

    async def decide(unit: UnitOfWork) -> Decided:
        return await images.import_image(
            unit,
            tenant_id=tenant_id,
            staff=staff,
            name=body.name,
            pool_id=body.pool_id,
            url=body.source.url,
            path=body.source.path,
            source_format=body.format,
            architecture=body.architecture,
            os_family=body.os_family,
            min_disk_gb=body.min_disk_gb,
            host_ids=hosts,
            health=health,
        )

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/admin/images/actions/import",
    summary="Import a public image from a URL or a file in the pool's incoming directory",
    action="admin:image:create",
    body=ImportImage,
    response=Accepted,
    status=202,
    tags=("images", "admin"),
)
async def import_public_image(call: Call) -> web.Response:
    return await _import(call, call.body, None)


@router.route(
    "POST",
    "/v1/images/actions/import",
    summary="Import a private image from an http(s) URL",
    action="compute:image:create",
    body=ImportImage,
    response=Accepted,
    status=202,
    tags=("images",),
)
async def import_private_image(call: Call) -> web.Response:
    tenant_id = call.me.tenant_id
    if tenant_id is None:
        raise ValidationFailed("staff import public images at /v1/admin/images/actions/import")
    return await _import(call, call.body, tenant_id)


@router.route(
    "POST",
    "/v1/instances/{id}/actions/export-image",
    summary="Export a stopped instance's disk as a new private image of its tenant",
    action="compute:image:create",
    body=ExportImage,
    response=Accepted,
    status=202,
    kind="i",
    tags=("images", "instances"),
)
async def export_instance_image(call: Call) -> web.Response:
    body: ExportImage = call.body
    instance_id = call.request.match_info["id"]
    document = await call.document(instance_id, "i", "compute:image:create")

    async def decide(unit: UnitOfWork) -> Decided:
        instance = await compute.instance_of(unit, instance_id, document.tenant_id)
        return await images.export_image(unit, instance, body.name)

    return call.accepted(await call.execute(decide, tenant_id=document.tenant_id))


@router.route(
    "GET",
    "/v1/images",
    summary="Images the caller may use: its own and the public ones",
    action="compute:image:read",
    query=ImageQuery,
    response=ImagePage,
    tags=("images",),
)
async def list_images(call: Call) -> web.Response:
    return await list_kind(
        call,
        "img",
        call.query,
        tenant_id=call.me.tenant_id,
        filters=("name", "status"),
        include_public=True,
    )


@router.route(
    "GET",
    "/v1/images/{id}",
    summary="One image",
    action="compute:image:read",
    response=ImageView,
    kind="img",
    tags=("images",),
)
async def get_image(call: Call) -> web.Response:
    image_id = call.request.match_info["id"]
    document = await call.current_document(image_id)
    me = call.me
    visible = (
        document is not None
        and document.kind == "img"
        and (
            me.is_platform
            or document.tenant_id in (None, me.tenant_id)
            or me.tenant_id in document.view.get("shared_with", [])
        )
    )
    if document is None or not visible:
        if document is not None and document.kind == "img":
            await call.audit_denial(
                DomainError("another tenant's resource"), image_id, foreign=True
            )
        raise NotFound(f"{image_id} does not exist", resource_id=image_id)
    return await call.one(document)


@router.route(
    "POST",
    "/v1/images/{id}/actions/share",
    summary="Share a private image with a tenant",
    action="compute:image:update",
    body=ShareImage,
    response=Accepted,
    status=202,
    kind="img",
    tags=("images",),
)
async def share_image(call: Call) -> web.Response:
    body: ShareImage = call.body
    image_id = call.request.match_info["id"]
    tenant_id = call.me.tenant_id

    async def decide(unit: UnitOfWork) -> Decided:
        image = await unit.get(image_id, Image, checked=True)
        if image.tenant_id is None or image.tenant_id != tenant_id:
            raise other_tenants(image_id)
        await references.tenant(unit, body.tenant_id)
        image.share(body.tenant_id)
        return Decided(resource_id=image.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))


@router.route(
    "POST",
    "/v1/images/{id}/actions/delete",
    summary="Delete a private image",
    action="compute:image:delete",
    response=Accepted,
    status=202,
    kind="img",
    tags=("images",),
)
async def delete_image(call: Call) -> web.Response:
    image_id = call.request.match_info["id"]
    tenant_id = call.me.tenant_id

    async def decide(unit: UnitOfWork) -> Decided:
        image = await unit.get(image_id, Image, checked=True)
        if not call.me.is_platform and image.tenant_id != tenant_id:
            raise other_tenants(image_id)
        image.delete()
        return Decided(resource_id=image.id)

    return call.accepted(await call.execute(decide, tenant_id=tenant_id))
