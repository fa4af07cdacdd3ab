"""How hard the dispatcher tries: timeouts, backoff, dead-lettering, batch sizes."""

from __future__ import annotations

import random

import msgspec

from gateways.settings import Settings


class DeliveryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    timeout: float = 10.0
    """Seconds for one attempt, connection to last byte."""
    backoff_initial: float = 1.0
    backoff_cap: float = 300.0
    max_failures: int | None = None
    """Consecutive failed attempts after which the webhook is dead-lettered; None: only
    ``pause_after_hours`` stops it."""
    pause_after_hours: float = 24.0
    """Hours a target may fail without a success before the webhook is paused."""
    redelivery_attempts: int = 20
    """Attempts of one manual redelivery before it is given up."""
    batch_size: int = 100
    """Events read per query while draining one webhook."""
    concurrency: int = 32
    """Webhooks delivered to at the same time (each one strictly in order)."""
    idle_poll: float = 1.0
    """Seconds between looks when no append was signalled (covers lost NOTIFYs)."""
    loopback_only: bool = False
    """Deliver to loopback addresses only, whatever a webhook says (tests, sandboxes)."""

    def backoff(self, failures: int) -> float:
        """Seconds before the next attempt: doubling, capped, with half of it random."""
        delay = min(self.backoff_cap, self.backoff_initial * 2.0 ** max(failures - 1, 0))
        # Jitter spreads retries of many webhooks to one recovering receiver; not security.
        return delay / 2 + random.random() * delay / 2  # noqa: S311


DEFAULT_POLICY = DeliveryPolicy()
"""What ``scloud worker`` uses until ``Settings`` carries webhook fields."""


def configured(settings: Settings) -> DeliveryPolicy:
    """The policy for these settings: the defaults, and what ``Settings`` says."""
    return msgspec.structs.replace(
        DEFAULT_POLICY,
        loopback_only=settings.webhook_loopback_only,
        pause_after_hours=settings.webhook_pause_after_hours,
    )
