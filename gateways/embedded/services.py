"""The platform's PostgreSQL, NATS and libvirtd: the configured ones, or ones started here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from gateways.embedded.libvirtd import LOCAL_SYSTEM_URIS, EmbeddedLibvirtd
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


@asynccontextmanager
async def host_libvirtd(settings: Settings) -> AsyncIterator[EmbeddedLibvirtd | None]:
    """The local host daemon's libvirtd: started here if it is ours to start and silent.

    Only the libvirt driver on this machine's system URI needs it; for any other driver or
    URI this yields None and starts nothing. A libvirtd that answers is used, not stopped.
    """
    if settings.host_driver != "libvirt" or settings.libvirt_uri not in LOCAL_SYSTEM_URIS:
        yield None
        return
    libvirtd = EmbeddedLibvirtd(settings.state_dir / "libvirtd", uri=settings.libvirt_uri)
    async with libvirtd:
        yield libvirtd
