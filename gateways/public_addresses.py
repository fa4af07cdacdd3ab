"""Public addresses only: what the platform (or a host) may connect to for a tenant's URL.

Webhook deliveries and image imports both fetch URLs that tenants chose. A name is judged
twice: when the URL is given (a clear 422), and on every connection through
``PublicOnlyResolver``, because a name that resolved to a public address then can later
resolve to 127.0.0.1 or 169.254.169.254 (DNS rebinding). aiohttp never asks a resolver
about a literal address, so callers judge literals with ``refusal`` themselves.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class NotPublic(OSError):
    """A name (or literal) that reaches a loopback, link-local, private… address."""

    def __init__(self, host: str, address: Address, reason: str) -> None:
        super().__init__(f"{host} resolves to {address}, a {reason} address")
        self.host = host
        self.address = address
        self.reason = reason


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


async def check_public(host: str, port: int, resolver: Resolve = resolve) -> None:
    """Raise NotPublic unless every address ``host`` names is public (OSError: no answer)."""
    found = literal(host)
    addresses = [found] if found is not None else await resolver(host, port)
    for address in addresses:
        reason = refusal(address)
        if reason is not None:
            raise NotPublic(host, address, reason)


class PublicOnlyResolver(AbstractResolver):
    """aiohttp's resolver, refusing names that resolve to any non-public address.

    ``inner`` answers the names (aiohttp's threaded resolver unless given): tests give a
    hostile one that answers loopback, as a rebinding DNS server would.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            address = ipaddress.ip_address(result["host"])
            reason = refusal(address)
            if reason is not None:
                raise NotPublic(host, address, reason)
        return results

    async def close(self) -> None:
        await self._inner.close()
