"""Where a webhook may point: public addresses only, unless an admin allowed otherwise.

Checked twice: when the URL is set (a clear 422 for the tenant), and on every connection
through ``PublicOnlyResolver``, because a name that resolved to a public address at
registration can later resolve to 127.0.0.1 or 169.254.169.254 (DNS rebinding).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from domain.subscriptions.webhook import WebhookTargetNotPublic, WebhookTargetUnresolvable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def refusal(address: Address) -> str | None:
    """Why ``address`` is no public target (``loopback``, ``private``, …), or None."""
    if isinstance(address, ipaddress.IPv6Address):
        # An IPv4 address wrapped in IPv6 reaches that IPv4 host: judge the IPv4 one.
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        elif address.sixtofour is not None:
            address = address.sixtofour
        elif address.teredo is not None:
            address = address.teredo[1]
    for reason, flagged in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
    ):
        if flagged:
            return reason
    return None if address.is_global else "not globally routable"


def literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[Address]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in infos]


Resolve = Callable[[str, int], Awaitable[list[Address]]]


async def check_target(url: str, *, allow_private: bool, resolver: Resolve = resolve) -> None:
    """Raise a 422 error unless every address ``url`` resolves to is public."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if allow_private:
        return
    found = literal(host)
    if found is not None:
        addresses = [found]
    else:
        try:
            addresses = await resolver(host, parts.port or 443)
        except OSError as error:
            raise WebhookTargetUnresolvable(
                f"{host} does not resolve: {error}", field="url"
            ) from None
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            raise WebhookTargetNotPublic(
                f"{host} resolves to {address}, a {reason} address; webhooks go to public "
                "addresses unless a platform admin allows private targets for this webhook",
                field="url",
                address=str(address),
            )


class PublicOnlyResolver(AbstractResolver):
    """aiohttp's resolver, refusing names that resolve to any non-public address."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            reason = refusal(ipaddress.ip_address(result["host"]))
            if reason is not None:
                raise OSError(f"{host} resolves to {result['host']}, a {reason} address")
        return results

    async def close(self) -> None:
        await self._inner.close()
