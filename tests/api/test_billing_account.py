"""A tenant has its billing account from its creation: zero balance, in its currency.

A tenant created before accounts opened with their tenants has none in the store until
its first recharge or charge; its account still reads as it will open, empty.
"""

from __future__ import annotations

import secrets

from api.services.executor import Decided
from api.services.identity import check_password
from api.services.unit_of_work import UnitOfWork
from domain import clock
from domain.billing.account import account_id, period_of
from domain.identity.tenant import Tenant
from domain.identity.user import User
from domain.ids import new_id
from domain.metadata import Actor, CommandContext
from domain.quota.ledger import QuotaLedger
from gateways.passwords import hash_password
from tests.api.conftest import Api

EMPTY = {
    "balance_minor": 0,
    "credit_limit_minor": 0,
    "low_balance_minor": 0,
    "standing": "ok",
    "arrears_since": None,
    "closed_periods": [],
    "held_minor": 0,
    "available_minor": 0,
}


def empty_account(tenant_id: str, currency: str) -> dict[str, object]:
    return {
        "id": account_id(tenant_id),
        "tenant_id": tenant_id,
        "currency": currency,
        "opened_period": period_of(clock.now()),
        **EMPTY,
    }


async def test_a_new_tenant_has_an_empty_account_in_its_currency(api: Api) -> None:
    email = f"owner-{secrets.token_hex(4)}@euro.example"
    made = await api.settled(
        await api.admin.post(
            "/v1/admin/tenants",
            json={
                "name": "euro",
                "owner_email": email,
                "owner_password": "owner-password-123",
                "currency": "EUR",
            },
        )
    )
    tenant_id = made["resource_id"]
    owner = await api.login(email, "owner-password-123")

    mine = await owner.get("/v1/billing/account")
    assert mine.status == 200, await mine.text()
    assert await mine.json() == empty_account(tenant_id, "EUR")
    theirs = await api.admin.get(f"/v1/admin/tenants/{tenant_id}/billing-account")
    assert theirs.status == 200 and await theirs.json() == empty_account(tenant_id, "EUR")

    # The account is in the store, opened by the tenant's creation command itself.
    stream = await api.platform.store.read_stream(account_id(tenant_id))
    assert [e.topic.rsplit(".", 1)[1] for e in stream] == ["Created"]
    assert stream[0].position <= made["position"]

    # Money lands on that account (no second one is opened).
    await api.settled(
        await api.admin.post(
            f"/v1/admin/tenants/{tenant_id}/actions/recharge",
            json={"amount_minor": 1_250, "currency": "EUR", "reference": "wire"},
        )
    )
    paid = await (await owner.get("/v1/billing/account")).json()
    assert (paid["balance_minor"], paid["currency"]) == (1_250, "EUR")
    refused = await api.admin.post(
        f"/v1/admin/tenants/{tenant_id}/actions/recharge",
        json={"amount_minor": 100, "currency": "USD", "reference": "wrong"},
    )
    assert refused.status == 422, await refused.text()


async def test_a_tenant_created_before_accounts_reads_an_empty_account(api: Api) -> None:
    """Created as tenants were before: tenant, owner and quota ledger, no account."""
    tenant_id = new_id("tnt")
    email = f"owner-{secrets.token_hex(4)}@old.example"

    async def decide(unit: UnitOfWork) -> Decided:
        tenant = Tenant._create(
            Tenant.Created, id=tenant_id, name="old", currency="GBP", contact_email=email
        )
        owner = User(
            email=email,
            password_hash=hash_password(check_password("owner-password-123")),
            roles=["owner"],
            tenant_id=tenant_id,
            kind="owner",
        )
        unit.add(tenant)
        unit.add(owner)
        unit.add(QuotaLedger.open(tenant_id))
        return Decided(resource_id=tenant_id)

    context = CommandContext(
        actor=Actor.system("test"), tenant_id=tenant_id, command_id=secrets.token_hex(8)
    )
    outcome = await api.platform.executor.run(context, "admin:tenant:create", decide)
    await api.wait_for(outcome.position)
    await api.platform.identity.catch_up(api.platform.store, outcome.position)
    assert await api.platform.store.read_stream(account_id(tenant_id)) == []
    owner = await api.login(email, "owner-password-123")

    mine = await owner.get("/v1/billing/account")
    assert mine.status == 200, await mine.text()
    assert await mine.json() == empty_account(tenant_id, "GBP")
    theirs = await api.admin.get(f"/v1/admin/tenants/{tenant_id}/billing-account")
    assert theirs.status == 200 and await theirs.json() == empty_account(tenant_id, "GBP")

    # Its first recharge opens it, and the read is the stored account from then on.
    await api.settled(
        await api.admin.post(
            f"/v1/admin/tenants/{tenant_id}/actions/recharge",
            json={"amount_minor": 300, "currency": "GBP", "reference": "wire"},
        )
    )
    stored = await (await owner.get("/v1/billing/account")).json()
    assert (stored["balance_minor"], stored["currency"]) == (300, "GBP")


async def test_a_tenant_that_does_not_exist_has_no_account(api: Api) -> None:
    missing = await api.admin.get(f"/v1/admin/tenants/tnt-{'1' * 26}/billing-account")
    assert missing.status == 404, await missing.text()
    staff = await api.admin.get("/v1/billing/account")
    assert staff.status == 404, await staff.text()
