"""Hypothesis: whatever the lives of the instances, the recharges, the prepaid orders and
renewals (held, spent or let go) and the rhythm (or the repetition) of settlement, the
ledger balances and no charge is posted twice.

The model meters like the usage projection (``changes``), rates like the settlement
(``to_rate`` from the marks the projection keeps, which may lag behind) and posts to the
real ``BillingAccount``; its events are turned into postings as the ledger does.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain import clock
from domain.billing.account import BillingAccount, InsufficientBalance
from domain.billing.dimensions import instance_usage
from domain.billing.metering import Segment, changes, to_rate
from domain.billing.postings import postings, tenant_account
from domain.billing.rating import floor_hour, rate
from domain.billing.subscription import purchase_line, term_end
from domain.ids import hashed_id, new_id

T0 = datetime(2027, 1, 31, 20, 17, tzinfo=UTC)
REGION = "rgn-" + "1" * 26


def book(prices: list[dict[str, str]], changes_at: list[int]) -> dict[str, Any]:
    versions = [
        {
            "number": n + 1,
            "effective_from": (T0 - timedelta(hours=1) + timedelta(minutes=at)).isoformat(),
            "prices": version,
            "tenant_overrides": {},
        }
        for n, (version, at) in enumerate(zip(prices, [0, *changes_at], strict=False))
    ]
    return {"id": "pbk-" + "0" * 26, "currency": "USD", "versions": versions}


price = st.sampled_from(["0", "0.5", "1", "3.7", "12", "40.25"])
prices = st.fixed_dictionaries({"vcpu": price, "memory_gb": price, "disk_gb:standard": price})
action = st.one_of(
    st.tuples(st.just("wait"), st.integers(1, 400)),
    st.tuples(st.just("power"), st.sampled_from(["running", "stopped", "recycled", "purged"])),
    st.tuples(st.just("resize"), st.integers(1, 16)),
    st.tuples(st.just("recharge"), st.integers(1, 5000)),
    st.tuples(st.just("settle"), st.booleans()),  # True: the projection lags behind
    st.tuples(st.just("repeat"), st.just(0)),
    st.tuples(st.just("order"), st.integers(0, 3000)),  # a prepaid term, held then spent
    st.tuples(st.just("reserve"), st.integers(0, 3000)),  # a renewal's hold
    st.tuples(st.just("release"), st.booleans()),  # the renewal is spent, or let go
)


class Model:
    def __init__(self, instances: int, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.state = [{"status": "running", "vcpus": 2} for _ in range(instances)]
        self.ids = [new_id("i") for _ in range(instances)]
        self.segments: list[Segment] = []
        self.now = T0
        self.last_cutoff: datetime | None = None
        for index in range(instances):
            self.meter(index, {})

    def usage(self, index: int) -> dict[str, Decimal]:
        s = self.state[index]
        return instance_usage(s["status"], s["vcpus"], 2048, 20)

    def meter(self, index: int, before: dict[str, Decimal]) -> None:
        closed, opened = changes(before, self.usage(index))
        resource = self.ids[index]
        for n, segment in enumerate(self.segments):
            if (
                segment.resource_id == resource
                and segment.dimension in closed
                and segment.end is None
            ):
                self.segments[n] = Segment(**{**_fields(segment), "end": self.now})
        self.segments = [s for s in self.segments if s.end != s.start]
        for dimension, quantity in opened.items():
            self.segments.append(
                Segment(
                    resource_id=resource,
                    tenant_id=self.tenant_id,
                    region_id=REGION,
                    project_id=None,
                    dimension=dimension,
                    quantity=quantity,
                    start=self.now,
                    end=None,
                )
            )

    def change(self, index: int, **values: Any) -> None:
        before = self.usage(index)
        self.state[index].update(values)
        self.meter(index, before)


def _fields(segment: Segment) -> dict[str, Any]:
    return {f: getattr(segment, f) for f in segment.__struct_fields__}


def post_events(account: BillingAccount) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for event in account.collect_events():
        name = type(event).__qualname__.split(".")[-1]
        state = dict(event.__dict__)
        events.append((name, state))
    return events


@settings(max_examples=300, deadline=None)
@given(
    versions=st.lists(prices, min_size=1, max_size=3),
    changes_at=st.lists(st.integers(30, 3000), min_size=2, max_size=2, unique=True),
    instances=st.integers(1, 3),
    actions=st.lists(st.tuples(st.integers(0, 2), action), max_size=40),
)
def test_the_ledger_balances_and_no_charge_is_posted_twice(
    versions: list[dict[str, str]],
    changes_at: list[int],
    instances: int,
    actions: list[tuple[int, tuple[str, Any]]],
) -> None:
    books = {"pbk-" + "0" * 26: book(versions, sorted(changes_at))}
    manual = clock.ManualClock(T0)
    tenant_id = new_id("tnt")
    with clock.using(manual):
        model = Model(instances, tenant_id)
        account = BillingAccount.open(tenant_id, "USD")
        journal: list[tuple[str, dict[str, Any]]] = post_events(account)

        def settle(cutoff: datetime, lagging: bool) -> None:
            usages = [u for s in model.segments if (u := to_rate(s, cutoff)) is not None]
            charges = [c for u in usages for c in rate(u, books)]
            posted = account.post(charges)
            journal.extend(post_events(account))
            if lagging:
                return  # the usage projection has not seen this posting yet
            ends: dict[tuple[str, str], datetime] = {}
            for charge in posted:
                key = (charge.resource_id, charge.dimension)
                ends[key] = max(ends.get(key, charge.end), charge.end)
            for n, s in enumerate(model.segments):
                end = ends.get((s.resource_id, s.dimension))
                if end is not None and s.start < end and (s.end is None or end <= s.end):
                    model.segments[n] = Segment(**{**_fields(s), "rated_until": end})

        recharged = 0
        purchased = 0
        reserved: list[tuple[str, int]] = []

        def spend(order: str, amount: int) -> None:
            nonlocal purchased
            line = purchase_line(
                hashed_id("chg", order),
                model.ids[0],
                REGION,
                None,
                "monthly",
                model.now,
                term_end(model.now, "monthly"),
                amount,
                "USD",
                "v1",
                amount,  # at list price
            )
            account.post_hold(order, line)
            purchased += amount

        for index, (kind, value) in actions:
            index %= instances
            if kind == "wait":
                model.now += timedelta(minutes=value)
                manual.set(model.now)
            elif kind == "power" and model.state[index]["status"] != "purged":
                model.change(index, status=value)
            elif kind == "resize" and model.state[index]["status"] == "stopped":
                model.change(index, vcpus=value)
            elif kind == "recharge":
                account.recharge(value, "USD", "test")
                journal.extend(post_events(account))
                recharged += value
            elif kind == "settle":
                model.last_cutoff = floor_hour(model.now)
                settle(model.last_cutoff, value)
            elif kind == "repeat" and model.last_cutoff is not None:
                settle(model.last_cutoff, True)  # a retried round, unseen by the projection
            elif kind in ("order", "reserve"):
                order = new_id("ord")
                try:
                    account.hold(order, value)
                except InsufficientBalance:
                    assert value > account.available_minor
                    continue
                if kind == "order":
                    spend(order, value)
                else:
                    reserved.append((order, value))
            elif kind == "release" and reserved:
                order, amount = reserved.pop(0)
                if value:
                    spend(order, amount)
                else:
                    account.void_hold(order, "cancelled")
            journal.extend(post_events(account))
            assert (
                account.available_minor
                == account.balance_minor
                + account.credit_limit_minor
                - sum(amount for _, amount in reserved)
            )
        # Every interval ends, and a last round far ahead rates whatever is left.
        for index in range(instances):
            model.change(index, status="purged")
        final = floor_hour(model.now) + timedelta(hours=2)
        settle(final, False)

    charged: list[str] = []
    bought: list[str] = []
    tenant_side = 0
    for name, state in journal:
        lines = postings(name, tenant_id, state)
        assert sum(p.amount_minor for p in lines) == 0, (name, lines)  # debits == credits
        tenant_side += sum(
            p.amount_minor for p in lines if p.ledger_account == tenant_account(tenant_id)
        )
        if name == "ChargesPosted":
            charged.extend(c["charge_id"] for c in state["charges"])
        if name == "HoldPosted":
            bought.append(state["line"]["charge_id"])
    every = charged + bought
    assert not [cid for cid, n in Counter(every).items() if n > 1], "a charge posted twice"
    assert account.balance_minor == -tenant_side

    # The rhythm of settlement changes nothing: rating every whole interval at once
    # gives the very same charges.
    wholes = [
        to_rate(Segment(**{**_fields(s), "rated_until": None}), final) for s in model.segments
    ]
    at_once = [c for whole in wholes if whole is not None for c in rate(whole, books)]
    assert sorted(charged) == sorted(c.charge_id for c in at_once)
    assert account.balance_minor == recharged - purchased - sum(c.amount_minor for c in at_once)
