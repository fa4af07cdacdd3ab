"""Which addresses a webhook may reach, and the backoff between attempts (no database)."""

from __future__ import annotations

import ipaddress

import pytest

from domain.subscriptions.webhook import (
    WebhookEventTypesInvalid,
    WebhookTargetNotPublic,
    WebhookTargetUnresolvable,
    WebhookUrlInvalid,
    check_event_types,
    check_url,
    matches,
)
from gateways.webhooks.policy import DeliveryPolicy
from gateways.webhooks.targets import Address, PublicOnlyResolver, check_target, refusal

REFUSED = {
    "127.0.0.1": "loopback",
    "127.8.9.10": "loopback",
    "::1": "loopback",
    "169.254.169.254": "link-local",
    "fe80::1": "link-local",
    "10.0.0.1": "private",
    "172.16.5.4": "private",
    "192.168.1.1": "private",
    "fd00::1": "private",
    "0.0.0.0": "unspecified",
    "::": "unspecified",
    "224.0.0.1": "multicast",
    "100.64.0.1": "not globally routable",
    "::ffff:127.0.0.1": "loopback",
    "64:ff9b::a9fe:a9fe": "link-local",
    "2002:7f00:1::": "loopback",
}


@pytest.mark.parametrize(("address", "reason"), sorted(REFUSED.items()))
def test_internal_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "https://10.1.2.3/",
        "http://localhost:9000/",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
async def test_check_target_refuses_internal_urls_unless_allowed(url: str) -> None:
    with pytest.raises(WebhookTargetNotPublic):
        await check_target(url, allow_private=False)
    await check_target(url, allow_private=True)


async def test_names_are_judged_by_every_address_they_resolve_to() -> None:
    """With a fake resolver: no DNS query leaves the machine."""
    answers = {
        "public.example": ["93.184.215.14"],
        "mixed.example": ["93.184.215.14", "10.0.0.5"],
        "metadata.example": ["169.254.169.254"],
    }

    async def fake(host: str, port: int) -> list[Address]:
        if host not in answers:
            raise OSError("Name or service not known")
        return [ipaddress.ip_address(a) for a in answers[host]]

    await check_target("https://public.example/hook", allow_private=False, resolver=fake)
    for host in ("mixed.example", "metadata.example"):
        with pytest.raises(WebhookTargetNotPublic):
            await check_target(f"https://{host}/hook", allow_private=False, resolver=fake)
    with pytest.raises(WebhookTargetUnresolvable):
        await check_target("https://nowhere.example/", allow_private=False, resolver=fake)


async def test_the_connection_resolver_refuses_names_of_internal_addresses() -> None:
    resolver = PublicOnlyResolver()
    with pytest.raises(OSError, match="loopback"):
        await resolver.resolve("localhost", 80)
    await resolver.close()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/",
        "example.com/hook",
        "https://user:pw@example.com/",
        "https:///x",
        "https://example.com:0/",
        "https://example.com/#frag",
        "http://[::1/",
    ],
)
def test_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(WebhookUrlInvalid):
        check_url(url)


def test_event_type_globs() -> None:
    topic = "domain.identity.tenant:Tenant.Frozen"
    assert matches(["*"], topic)
    assert matches(["Tenant.*"], topic)
    assert matches(["Instance.*", "Tenant.Frozen"], topic)
    assert not matches(["Instance.*"], topic)
    assert not matches(["Frozen"], topic)
    for bad in ([], ["ok", "not ok"], ["x" * 101], ["*"] * 21):
        with pytest.raises(WebhookEventTypesInvalid):
            check_event_types(bad)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = DeliveryPolicy(backoff_initial=1.0, backoff_cap=300.0)
    for failures, full in [(1, 1.0), (2, 2.0), (3, 4.0), (9, 256.0), (10, 300.0), (50, 300.0)]:
        delays = [policy.backoff(failures) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 10  # jittered, not fixed
