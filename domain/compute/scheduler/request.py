"""What the scheduler is asked to place: one instance's size, constraints and preferences."""

from __future__ import annotations

from enum import StrEnum

import msgspec

from domain.errors import ValidationFailed


class Strategy(StrEnum):
    """Spread fills the emptiest host first; pack fills the fullest host that still fits."""

    SPREAD = "spread"
    PACK = "pack"


class GpuRequest(msgspec.Struct, frozen=True):
    count: int
    model: str | None = None
    """None takes any model."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValidationFailed("a GPU request needs at least one device", field="gpus")


class PlacementRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One instance to place; a batch places several copies with their own instance ids."""

    instance_id: str
    tenant_id: str
    region_id: str
    cluster_id: str | None = None
    architecture: str
    vcpus: int
    memory_mb: int
    disk_gb: int
    gpus: GpuRequest | None = None
    server_group_id: str | None = None
    preemptible: bool = False
    strategy: Strategy = Strategy.SPREAD
    required_labels: dict[str, str] = {}

    def __post_init__(self) -> None:
        if self.vcpus < 1 or self.memory_mb < 1 or self.disk_gb < 0:
            raise ValidationFailed(
                "an instance needs vcpus and memory_mb of at least 1 and disk_gb of at least 0",
                field="flavor",
            )
