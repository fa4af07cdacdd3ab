"""The platform's PostgreSQL and NATS: the configured ones, or embedded ones started here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from gateways.embedded.nats import EmbeddedNats
from gateways.embedded.postgres import EmbeddedPostgres
from gateways.settings import Settings


@asynccontextmanager
async def platform_services(settings: Settings) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(database_url, nats_url)``, embedding whichever one ``settings`` leaves unset.

    Embedded servers keep their data under ``settings.state_dir`` and stop on exit.
    """
    async with AsyncExitStack() as stack:
        database_url = settings.database_url
        if database_url is None:
            postgres = EmbeddedPostgres(settings.state_dir / "postgres")
            database_url = (await stack.enter_async_context(postgres)).url
        nats_url = settings.nats_url
        if nats_url is None:
            nats = EmbeddedNats(settings.state_dir / "nats")
            nats_url = (await stack.enter_async_context(nats)).url
        yield database_url, nats_url
