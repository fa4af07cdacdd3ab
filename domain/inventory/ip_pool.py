"""An IP pool: a region's block of IPv4 or IPv6 addresses, handed out from its ranges."""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from eventsourcing.domain import event

from domain.aggregate import Aggregate
from domain.errors import InvalidState, ValidationFailed
from domain.inventory.name_claim import check_name
from domain.inventory.region import Region

PURPOSES = ("public", "private", "management")
MAX_RANGES = 256

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class RangesOverlap(ValidationFailed):
    code = "ip_ranges_overlap"


def parse_cidr(cidr: str, ip_version: int | None = None) -> Network:
    try:
        network = ipaddress.ip_network(cidr, strict=True)
    except ValueError as error:
        raise ValidationFailed(f"cidr: {error}", field="cidr") from None
    if ip_version is not None and network.version != ip_version:
        raise ValidationFailed(f"{cidr} is not an IPv{ip_version} network", field="ip_version")
    return network


def _reserved(network: Network) -> set[Address]:
    """Addresses no one may be given: an IPv4 subnet's network and broadcast addresses."""
    if network.version == 4 and network.prefixlen <= 30:
        return {network.network_address, network.broadcast_address}
    return set()


def _address(network: Network, text: str, field: str) -> Address:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValidationFailed(f"{field}: {text!r} is not an IP address", field=field) from None
    if getattr(address, "scope_id", None):
        raise ValidationFailed(f"{field}: {text!r} carries a zone index", field=field)
    if address.version != network.version or address not in network:
        raise ValidationFailed(f"{field}: {address} is outside {network}", field=field)
    if address in _reserved(network):
        raise ValidationFailed(
            f"{field}: {address} is {network}'s network or broadcast address", field=field
        )
    return address


def check_ranges(network: Network, ranges: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """Each range inside ``network``, start ≤ end, none overlapping; sorted by start."""
    if not 1 <= len(ranges) <= MAX_RANGES:
        raise ValidationFailed(f"a pool has 1 to {MAX_RANGES} ranges", field="ranges")
    parsed: list[tuple[Address, Address]] = []
    for given in ranges:
        start = _address(network, given["start"], "ranges")
        end = _address(network, given["end"], "ranges")
        if int(end) < int(start):
            raise ValidationFailed(f"range {start}-{end} ends before it starts", field="ranges")
        parsed.append((start, end))
    parsed.sort(key=lambda pair: int(pair[0]))
    for (start, end), (next_start, next_end) in itertools.pairwise(parsed):
        if int(next_start) <= int(end):
            raise RangesOverlap(
                f"ranges {start}-{end} and {next_start}-{next_end} overlap", field="ranges"
            )
    return [{"start": str(start), "end": str(end)} for start, end in parsed]


def check_gateway(network: Network, gateway: str, ranges: Sequence[Mapping[str, str]]) -> str:
    """The gateway sits in the network but in none of the ranges handed out."""
    address = _address(network, gateway, "gateway")
    for given in ranges:
        start, end = ipaddress.ip_address(given["start"]), ipaddress.ip_address(given["end"])
        if int(start) <= int(address) <= int(end):
            raise ValidationFailed(
                f"gateway {address} lies in the range {given['start']}-{given['end']}",
                field="gateway",
            )
    return str(address)


class IpPool(Aggregate):
    id_prefix = "ipp"

    def __init__(
        self,
        region_id: str,
        name: str,
        ip_version: int,
        cidr: str,
        ranges: list[dict[str, str]],
        gateway: str,
        purpose: str,
        enabled: bool,
    ) -> None:
        self.region_id = region_id
        self.name = name
        self.ip_version = ip_version
        self.cidr = cidr
        self.ranges = [dict(r) for r in ranges]
        self.gateway = gateway
        self.purpose = purpose
        self.enabled = enabled

    @classmethod
    def define(
        cls,
        region: Region,
        name: str,
        cidr: str,
        ranges: Sequence[Mapping[str, str]],
        gateway: str,
        purpose: str,
        ip_version: int | None = None,
        enabled: bool = True,
    ) -> IpPool:
        """A new pool in ``region``, which must be enabled."""
        if not region.enabled:
            raise InvalidState(f"region {region.name} is disabled", region_id=region.id)
        if purpose not in PURPOSES:
            raise ValidationFailed(f"purpose must be one of {list(PURPOSES)}", field="purpose")
        network = parse_cidr(cidr, ip_version)
        checked = check_ranges(network, ranges)
        return cls(
            region_id=region.id,
            name=check_name(name),
            ip_version=network.version,
            cidr=str(network),
            ranges=checked,
            gateway=check_gateway(network, gateway, checked),
            purpose=purpose,
            enabled=enabled,
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "tenant_id": None,
            "region_id": self.region_id,
            "name": self.name,
            "ip_version": self.ip_version,
            "cidr": self.cidr,
            "ranges": self.ranges,
            "gateway": self.gateway,
            "purpose": self.purpose,
            "status": "enabled" if self.enabled else "disabled",
        }

    def rename(self, name: str) -> None:
        if check_name(name) != self.name:
            self._renamed(name)

    @event("Renamed")
    def _renamed(self, name: str) -> None:
        self.name = name

    def reconfigure(self, ranges: Sequence[Mapping[str, str]] | None, gateway: str | None) -> None:
        """New ranges, a new gateway, or both, checked against each other."""
        network = parse_cidr(self.cidr)
        new_ranges = self.ranges if ranges is None else check_ranges(network, ranges)
        new_gateway = check_gateway(
            network, self.gateway if gateway is None else gateway, new_ranges
        )
        if new_ranges != self.ranges:
            self._ranges_changed(new_ranges)
        if new_gateway != self.gateway:
            self._gateway_changed(new_gateway)

    @event("RangesChanged")
    def _ranges_changed(self, ranges: list[dict[str, str]]) -> None:
        self.ranges = ranges

    @event("GatewayChanged")
    def _gateway_changed(self, gateway: str) -> None:
        self.gateway = gateway

    def enable(self) -> None:
        if self.enabled:
            raise InvalidState(f"IP pool {self.name} is already enabled", ip_pool_id=self.id)
        self._enabled()

    @event("Enabled")
    def _enabled(self) -> None:
        self.enabled = True

    def disable(self) -> None:
        if not self.enabled:
            raise InvalidState(f"IP pool {self.name} is already disabled", ip_pool_id=self.id)
        self._disabled()

    @event("Disabled")
    def _disabled(self) -> None:
        self.enabled = False
