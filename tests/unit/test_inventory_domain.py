"""The inventory's and the global configuration's rules, on the aggregates alone."""

from __future__ import annotations

import math
from typing import Any

import pytest
from eventsourcing.persistence import Mapper
from hypothesis import given
from hypothesis import strategies as st

from domain.aggregate import Aggregate
from domain.errors import InvalidState, ValidationFailed
from domain.ids import is_id
from domain.inventory.cluster import Cluster
from domain.inventory.flavor import Flavor
from domain.inventory.host import Host
from domain.inventory.image_pool import ImagePool
from domain.inventory.ip_pool import IpPool, RangesOverlap, check_ranges, parse_cidr
from domain.inventory.name_claim import NameClaim, NameInUse, check_name, claim_id
from domain.inventory.quota_defaults import check_quota_defaults, merged
from domain.inventory.region import Region
from domain.settings.global_config import GLOBAL_CONFIG_ID, GlobalConfig
from gateways.eventstore.repository import mutate_all
from gateways.eventstore.transcoder import MsgspecTranscoder

CAPACITY = {"vcpus": 32, "memory_mb": 131072, "disk_gb": 1000}


def replayed(aggregate: Aggregate) -> Any:
    """The aggregate rebuilt from its events, as the store would bring them back."""
    mapper: Mapper[str] = Mapper(transcoder=MsgspecTranscoder())
    stored = [mapper.to_stored_event(e) for e in aggregate.collect_events()]
    return mutate_all([mapper.to_domain_event(s) for s in stored])  # type: ignore[misc]


def event_names(aggregate: Aggregate) -> list[str]:
    return [type(e).__name__ for e in aggregate.pending_events]


def region(**extra: Any) -> Region:
    return Region.open("eu-west-1", **extra)


def cluster(**extra: Any) -> Cluster:
    return Cluster.form(region(), "c1", "x86_64", "compute", **extra)


def pool(ranges: list[tuple[str, str]], **extra: Any) -> IpPool:
    args: dict[str, Any] = {"cidr": "10.0.0.0/24", "gateway": "10.0.0.1", "purpose": "private"}
    args.update(extra)
    given_ranges = [{"start": start, "end": end} for start, end in ranges]
    return IpPool.define(region(), "p1", ranges=given_ranges, **args)


# -- names ----------------------------------------------------------------------------


def test_a_claim_id_is_derived_from_scope_and_name_whatever_the_case() -> None:
    assert claim_id("region", "eu-1") == claim_id("region", " EU-1 ")
    assert claim_id("region", "eu-1") != claim_id("cluster:rgn-x", "eu-1")
    assert is_id(claim_id("region", "eu-1"), "nam")


def test_a_released_name_can_be_taken_and_a_held_one_cannot() -> None:
    claim = NameClaim.claim("flavor", "m1.small", "flv-a")
    claim.take("flv-a")  # its own holder: nothing happens
    with pytest.raises(NameInUse):
        claim.take("flv-b")
    claim.release()
    claim.take("flv-b")
    assert replayed(claim).owner_id == "flv-b"


@pytest.mark.parametrize("name", ["", "EU", "a b", "-a", "a-", "a" * 64, "é", "a\n"])
def test_names_are_short_lower_case_words(name: str) -> None:
    with pytest.raises(ValidationFailed):
        check_name(name)


# -- quota defaults and regions --------------------------------------------------------


def test_quota_defaults_name_known_kinds_with_sane_limits() -> None:
    with pytest.raises(ValidationFailed):
        check_quota_defaults({"cpus": 1})
    with pytest.raises(ValidationFailed):
        check_quota_defaults({"vcpus": -1})
    assert merged({"vcpus": 8, "gpus": 1}, {"gpus": None, "instances": 3}) == {
        "instances": 3,
        "vcpus": 8,
    }


def test_a_region_records_only_real_changes() -> None:
    subject = region(quota_defaults={"vcpus": 10})
    subject.collect_events()
    subject.describe(None, None)
    subject.set_quota_defaults({"vcpus": 10})
    assert event_names(subject) == []
    subject.describe("EU West", None)
    subject.set_quota_defaults({"vcpus": None, "gpus": 2})
    assert event_names(subject) == ["DescriptionChanged", "QuotaDefaultsSet"]
    with pytest.raises(ValidationFailed):
        subject.describe("   ", None)
    with pytest.raises(InvalidState):
        subject.enable()
    subject.disable()
    with pytest.raises(InvalidState):
        subject.disable()
    assert subject.view()["quota_defaults"] == {"gpus": 2}


# -- clusters and hosts ----------------------------------------------------------------


def test_a_cluster_needs_an_enabled_region_and_sane_ratios() -> None:
    closed = region(enabled=False)
    with pytest.raises(InvalidState):
        Cluster.form(closed, "c1", "x86_64", "compute")
    made = cluster()
    assert (made.cpu_overcommit, made.memory_overcommit) == (4.0, 1.0)
    for ratio in (0.99, 16.5, math.nan, math.inf):
        with pytest.raises(ValidationFailed):
            cluster(cpu_overcommit=ratio)
    with pytest.raises(ValidationFailed):
        Cluster.form(region(), "c1", "riscv64", "compute")
    with pytest.raises(ValidationFailed):
        Cluster.form(region(), "c1", "x86_64", "gpu")
    made.set_overcommit(2, None)
    assert replayed(made).cpu_overcommit == 2.0


def test_a_host_belongs_to_its_clusters_region() -> None:
    parent = cluster()
    gpus = [{"address": "0000:3B:00.1", "model": "A100"}, {"address": "0000:3b:00.0", "model": "A"}]
    host = Host.register(parent, "node1.dc1", CAPACITY, {"rack": "a1"}, gpus)
    assert host.region_id == parent.region_id and host.status == "enabled"
    assert [g["address"] for g in host.gpus] == ["0000:3b:00.0", "0000:3b:00.1"]
    assert replayed(host).view() == host.view()


@pytest.mark.parametrize(
    "change",
    [
        {"hostname": "Node1"},
        {"hostname": "a" * 64},
        {"hostname": "x." * 127 + "x"},
        {"capacity": {**CAPACITY, "vcpus": 0}},
        {"capacity": {"vcpus": 1, "memory_mb": 1024}},
        {"labels": {"Rack": "a"}},
        {"labels": {"rack": "x" * 64}},
        {"gpus": [{"address": "0000:3b:20.0", "model": "A"}]},
        {"gpus": [{"address": "0000:3b:00.0", "model": "A"}] * 2},
        {"gpus": [{"address": "0000:3b:00.0", "model": ""}]},
    ],
)
def test_host_registrations_are_checked(change: dict[str, Any]) -> None:
    args: dict[str, Any] = {"hostname": "node1", "capacity": CAPACITY, "labels": {}, "gpus": []}
    with pytest.raises(ValidationFailed):
        Host.register(cluster(), **{**args, **change})


def test_a_host_moves_between_enabled_disabled_and_maintenance() -> None:
    host = Host.register(cluster(), "node1", CAPACITY, enabled=False)
    assert host.status == "disabled"
    with pytest.raises(InvalidState):
        host.disable()
    host.enter_maintenance()
    with pytest.raises(InvalidState):
        host.enter_maintenance()
    host.enable()
    host.relabel({"zone": "a"})
    host.relabel({"zone": None, "rack": "r2"})
    host.change_capacity({"memory_mb": 262144})
    host.change_capacity({"memory_mb": 262144})
    assert event_names(host)[-3:] == ["Relabelled", "Relabelled", "CapacityChanged"]
    again = replayed(host)
    assert (again.status, again.labels, again.capacity["memory_mb"]) == (
        "enabled",
        {"rack": "r2"},
        262144,
    )


# -- IP pools --------------------------------------------------------------------------


def test_a_pool_sorts_and_canonicalises_its_ranges() -> None:
    made = pool([("10.0.0.100", "10.0.0.200"), ("10.0.0.2", "10.0.0.99")])
    assert made.ranges == [
        {"start": "10.0.0.2", "end": "10.0.0.99"},
        {"start": "10.0.0.100", "end": "10.0.0.200"},
    ]
    v6 = pool(
        [("2001:DB8::0100", "2001:db8::1ff")],
        cidr="2001:db8::/64",
        gateway="2001:db8:0::1",
        ip_version=6,
    )
    assert (v6.ip_version, v6.ranges[0]["start"], v6.gateway) == (6, "2001:db8::100", "2001:db8::1")


@pytest.mark.parametrize(
    ("ranges", "extra"),
    [
        ([("10.0.0.9", "10.0.0.2")], {}),  # ends before it starts
        ([("10.0.1.2", "10.0.1.9")], {}),  # outside the CIDR
        ([("10.0.0.0", "10.0.0.9")], {}),  # the network address
        ([("10.0.0.200", "10.0.0.255")], {}),  # the broadcast address
        ([("10.0.0.2", "10.0.0.9")], {"gateway": "10.0.0.5"}),  # gateway handed out
        ([("10.0.0.2", "10.0.0.9")], {"gateway": "10.0.1.1"}),  # gateway elsewhere
        ([("10.0.0.2", "10.0.0.9")], {"cidr": "10.0.0.1/24"}),  # host bits set
        ([("10.0.0.2", "10.0.0.9")], {"ip_version": 6}),
        ([("10.0.0.2", "10.0.0.9")], {"purpose": "storage"}),
        ([("fe80::1%eth0", "fe80::9")], {"cidr": "fe80::/64", "gateway": "fe80::ffff"}),
        ([], {}),
    ],
)
def test_pool_definitions_are_checked(ranges: list[tuple[str, str]], extra: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        pool(ranges, **extra)


def test_a_point_to_point_network_has_no_reserved_addresses() -> None:
    made = pool([("10.0.0.0", "10.0.0.0")], cidr="10.0.0.0/31", gateway="10.0.0.1")
    assert made.ranges == [{"start": "10.0.0.0", "end": "10.0.0.0"}]


def test_a_pool_is_reconfigured_as_a_whole() -> None:
    made = pool([("10.0.0.2", "10.0.0.9")])
    with pytest.raises(ValidationFailed):  # the new ranges would hand out the gateway
        made.reconfigure([{"start": "10.0.0.1", "end": "10.0.0.9"}], None)
    made.reconfigure([{"start": "10.0.0.1", "end": "10.0.0.9"}], "10.0.0.254")
    assert event_names(made) == ["Created", "RangesChanged", "GatewayChanged"]
    assert replayed(made).gateway == "10.0.0.254"


octets = st.integers(min_value=1, max_value=254)


@given(st.lists(st.tuples(octets, octets).map(sorted), min_size=1, max_size=6))
def test_ranges_are_refused_exactly_when_two_share_an_address(pairs: list[list[int]]) -> None:
    network = parse_cidr("10.0.0.0/24")
    given_ranges = [{"start": f"10.0.0.{a}", "end": f"10.0.0.{b}"} for a, b in pairs]
    shared = any(
        max(a1, a2) <= min(b1, b2)
        for i, (a1, b1) in enumerate(pairs)
        for (a2, b2) in pairs[i + 1 :]
    )
    if shared:
        with pytest.raises(RangesOverlap):
            check_ranges(network, given_ranges)
    else:
        assert len(check_ranges(network, given_ranges)) == len(pairs)


# -- image pools and flavors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "location", "good"),
    [
        ("rbd", "images", True),
        ("rbd", "ssd.images_2", True),
        ("rbd", "a/b", False),
        ("rbd", "..", False),
        ("qcow2", "/var/lib/scloud/images", True),
        ("qcow2", "var/lib", False),
        ("qcow2", "/var/../etc", False),
        ("qcow2", "/var/lib/", False),
        ("qcow2", "/", False),
        ("nfs", "server:/export", False),
    ],
)
def test_image_pool_locations_suit_their_backend(backend: str, location: str, good: bool) -> None:
    if good:
        assert ImagePool.define(region(), "p", backend, location).location == location
    else:
        with pytest.raises(ValidationFailed):
            ImagePool.define(region(), "p", backend, location)


def test_image_pools_need_an_enabled_region() -> None:
    with pytest.raises(InvalidState):
        ImagePool.define(region(enabled=False), "p", "rbd", "images")


@pytest.mark.parametrize(
    "change",
    [
        {"vcpus": 0},
        {"vcpus": 513},
        {"memory_mb": 64},
        {"min_disk_gb": 0},
        {"min_disk_gb": 200, "max_disk_gb": 100},
        {"gpu_count": 17},
        {"gpu_count": 0, "gpu_model": "A100"},
        {"architecture": "sparc"},
        {"name": "M1.Small"},
    ],
)
def test_flavor_specs_are_checked(change: dict[str, Any]) -> None:
    spec: dict[str, Any] = {
        "name": "m1.small",
        "vcpus": 2,
        "memory_mb": 2048,
        "min_disk_gb": 10,
        "max_disk_gb": 100,
        "architecture": "x86_64",
    }
    Flavor.define(**spec)
    with pytest.raises(ValidationFailed):
        Flavor.define(**{**spec, **change})


def test_a_flavor_is_published_and_withdrawn_once_each() -> None:
    flavor = Flavor.define("g1", 8, 65536, 50, 500, "aarch64", 2, None, public=False)
    flavor.collect_events()
    flavor.set_public(False)
    flavor.set_public(True)
    flavor.set_public(True)
    flavor.set_public(False)
    assert event_names(flavor) == ["Published", "Withdrawn"]
    assert flavor.view()["gpus"] == {"count": 2, "model": None}


# -- the global configuration ----------------------------------------------------------


def test_the_configuration_has_one_well_formed_id() -> None:
    assert is_id(GLOBAL_CONFIG_ID, "cfg")
    assert GlobalConfig.establish().id == GLOBAL_CONFIG_ID


def test_configuration_sections_change_what_is_given_and_nothing_else() -> None:
    config = GlobalConfig.establish()
    config.change_billing(grace_days=3)
    config.change_login_policy()
    config.change_mail()
    assert event_names(config) == ["Created"]
    config.change_billing(default_currency="EUR")
    config.change_mail(smtp_host="192.0.2.25", smtp_port=2525, password_secret="smtp")
    config.change_login_policy(token_ttl_hours=24)
    config.set_quota_defaults({"instances": 4})
    config.set_recycle_bin_retention(0)
    again = replayed(config)
    view = again.view()
    assert view["billing"] == {
        "default_currency": "EUR",
        "freeze_on_arrears": True,
        "grace_days": 3,
    }
    assert view["mail"]["smtp_host"] == "192.0.2.25" and view["mail"]["smtp_port"] == 2525
    assert view["login_policy"]["token_ttl_hours"] == 24
    assert (view["quota_defaults"], view["recycle_bin"]) == (
        {"instances": 4},
        {"retention_days": 0},
    )


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("change_billing", {"default_currency": "eur"}),
        ("change_billing", {"grace_days": 366}),
        ("change_mail", {"smtp_host": "not a host"}),
        ("change_mail", {"smtp_port": 0}),
        ("change_mail", {"security": "ssl"}),
        ("change_mail", {"from_address": "nobody"}),
        ("change_mail", {"password_secret": "Secret Password!"}),
        ("change_login_policy", {"password_min_length": 7}),
        ("change_login_policy", {"token_ttl_hours": 0}),
        ("change_login_policy", {"lockout_threshold": 101}),
        ("set_recycle_bin_retention", {"days": -1}),
        ("set_quota_defaults", {"limits": {"widgets": 1}}),
    ],
)
def test_configuration_values_are_checked(method: str, args: dict[str, Any]) -> None:
    config = GlobalConfig.establish()
    with pytest.raises(ValidationFailed):
        getattr(config, method)(**args)


def test_mail_settings_have_no_place_for_a_password() -> None:
    with pytest.raises(TypeError):
        GlobalConfig.establish().change_mail(password="hunter2")  # type: ignore[call-arg]
