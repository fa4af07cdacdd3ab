"""The real-QEMU tests' guest is the platform's starter image, cached for tests."""

from gateways.starter_image import (
    AGENT_PORT,
    MARKER,
    POWEROFF_MARKER,
    SHADOW_MARKER,
    GuestImage,
    cache_dir,
    guest_image,
)

__all__ = [
    "AGENT_PORT",
    "MARKER",
    "POWEROFF_MARKER",
    "SHADOW_MARKER",
    "GuestImage",
    "cache_dir",
    "guest_image",
]
