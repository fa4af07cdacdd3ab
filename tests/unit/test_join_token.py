"""A join token's rules, on the aggregate alone: single use, expiry, revocation, hostname."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidState, ValidationFailed
from domain.inventory.cluster import Cluster
from domain.inventory.join_token import (
    JoinToken,
    JoinTokenExpired,
    JoinTokenHostname,
    JoinTokenInvalid,
    JoinTokenRevoked,
    JoinTokenUsed,
)
from domain.inventory.region import Region
from tests.unit.test_inventory_domain import replayed

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def cluster() -> Cluster:
    region = Region.open("r1", None, "", True, {})
    return Cluster.form(region, "c1", "x86_64", "compute", 4.0, 1.0, True)


def token(hostname: str | None = None) -> JoinToken:
    return JoinToken.issue(cluster(), "a" * 64, NOW + timedelta(hours=1), hostname)


def test_a_token_is_good_once_and_remembers_its_host() -> None:
    joining = token()
    assert joining.refusal("a" * 64, "any.example", NOW) is None
    joining.use("hst-1", "any.example", NOW)
    assert isinstance(joining.refusal("a" * 64, "any.example", NOW), JoinTokenUsed)
    with pytest.raises(InvalidState):
        joining.use("hst-2", "other.example", NOW)
    back = replayed(joining)
    assert back.status == "used" and back.host_id == "hst-1" and back.secret_hash == "a" * 64
    assert "secret_hash" not in back.view()


def test_wrong_expired_revoked_and_foreign_hostnames_are_refused() -> None:
    joining = token("rack1.example")
    assert isinstance(joining.refusal("b" * 64, "rack1.example", NOW), JoinTokenInvalid)
    later = NOW + timedelta(hours=1)
    assert isinstance(joining.refusal("a" * 64, "rack1.example", later), JoinTokenExpired)
    assert isinstance(joining.refusal("a" * 64, "rack2.example", NOW), JoinTokenHostname)
    joining.revoke()
    assert isinstance(joining.refusal("a" * 64, "rack1.example", NOW), JoinTokenRevoked)
    with pytest.raises(InvalidState):
        joining.revoke()


def test_a_token_needs_an_aware_expiry_and_a_hostname_that_is_one() -> None:
    with pytest.raises(ValidationFailed):
        JoinToken.issue(cluster(), "a" * 64, datetime(2027, 1, 1), None)
    with pytest.raises(ValidationFailed):
        token("Not A Hostname")
