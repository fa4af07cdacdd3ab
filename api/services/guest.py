"""What a tenant does to its guest's system: reinstall the root disk, reset a password."""

from __future__ import annotations

from api.services.unit_of_work import UnitOfWork
from domain.compute.image import Image
from domain.compute.instance import Instance
from domain.errors import ValidationFailed
from domain.ids import new_id
from domain.inventory.flavor import Flavor


async def reinstall_instance(unit: UnitOfWork, instance: Instance, image_id: str | None) -> None:
    """Rebuild the root disk from ``image_id`` (its own image when None), at its disk size."""
    chosen = image_id or instance.image_id
    image = await unit.find(chosen, Image)
    if image is None or not image.usable_by(instance.tenant_id):
        raise ValidationFailed(f"{chosen} is not an image you can use", field="image_id")
    if image.region_id != instance.region_id:
        raise ValidationFailed(f"{chosen} is not in {instance.region_id}", field="image_id")
    flavor = await unit.get(instance.flavor_id, Flavor)
    if image.architecture != flavor.architecture:
        raise ValidationFailed(
            f"the image is for {image.architecture}, the instance for {flavor.architecture}",
            field="image_id",
        )
    if image.min_disk_gb > instance.disk_gb:
        raise ValidationFailed(
            f"the image needs a disk of {image.min_disk_gb} GB; the instance has "
            f"{instance.disk_gb} GB",
            field="image_id",
        )
    instance.reinstall(image.id, new_id("stp"))


def reset_password(instance: Instance, user: str, password_hash: str) -> None:
    instance.reset_password(user, password_hash, new_id("stp"))
