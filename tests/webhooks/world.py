"""A store with a loopback webhook and many events of its tenant (and of another), no API."""

from __future__ import annotations

from domain.identity.role import Role
from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from domain.subscriptions.webhook import Webhook
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import RecordedEvent
from gateways.eventstore.repository import Repository
from gateways.webhooks.secrets import WebhookSecrets

SECRETS = WebhookSecrets(b"webhook tests key, 32 bytes long")


async def seed(
    store: PostgresEventStore, url: str, *, events: int, per_save: int = 25
) -> tuple[str, str]:
    """A webhook to ``url`` (private targets allowed) and ``events`` events after it.

    Returns (webhook id, tenant id). Another tenant gets a quarter as many events.
    """
    repository = Repository(store)
    tenant_id, other_id = new_id("tnt"), new_id("tnt")
    webhook = Webhook(
        tenant_id=tenant_id,
        url=url,
        event_types=["*"],
        description="",
        secret_salt=SECRETS.new_salt(),
        key_id=SECRETS.key_id,
        paused=True,
    )
    webhook.allow_private_targets(True)
    webhook.resume()
    await repository.save(_context(tenant_id), webhook)
    for tenant, count in ((tenant_id, events - 1), (other_id, events // 4)):
        role = Role(tenant_id=tenant, name="churn", actions=["a:b:read"])
        for i in range(count):
            if i and i % per_save == 0:
                await repository.save(_context(tenant), role)
            role.set_actions([f"a:b{i}:read"])
        await repository.save(_context(tenant), role)
    return webhook.id, tenant_id


def _context(tenant_id: str) -> CommandContext:
    return CommandContext(actor=Actor.system("tests"), tenant_id=tenant_id)


async def expected(
    store: PostgresEventStore, webhook_id: str, tenant_id: str
) -> list[RecordedEvent]:
    """What the webhook should receive: its tenant's events after its creation."""
    start = (await store.read_stream(webhook_id))[0].position
    return await store.read_all(after=start, limit=1_000_000, tenant_id=tenant_id)
