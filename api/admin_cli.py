"""``scloud admin``: recovery run on the platform's own machine, against its store.

Whoever can run this can read the state dir (the token key, the embedded database's
password) or has the database's URL: the recovery asks no more than that.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

from api.services import identity
from api.services.executor import CommandExecutor, CommandFailed, Decided
from api.services.unit_of_work import UnitOfWork
from domain.errors import DomainError, NotFound
from domain.identity.email_claim import EmailClaim, claim_id
from domain.identity.user import User
from domain.metadata import Actor, ActorKind, CommandContext
from gateways.embedded.postgres import EmbeddedPostgres, running_url
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository
from gateways.passwords import generate_password, hash_off_loop
from gateways.settings import Settings
from projections.resources.queries import DocumentQueries

RESET_ACTION = "admin:user:reset-password"


@contextlib.asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[str]:
    """The configured database, else the embedded one: running, or started for this."""
    if settings.database_url is not None:
        yield settings.database_url
        return
    directory = settings.state_dir / "postgres"
    url = running_url(directory)
    if url is not None:
        yield url
        return
    async with EmbeddedPostgres(directory) as postgres:
        yield postgres.url


async def reset_password(settings: Settings, email: str) -> str:
    """Give the account ``email`` a new random password, audited; returns the password."""
    email = email.strip().lower()
    password = generate_password()
    new_hash = await hash_off_loop(password)
    async with _database(settings) as url:
        store = await PostgresEventStore.open(url, settings.schema, min_size=1, max_size=2)
        try:
            user = await find_user(store, settings.schema, email)

            async def decide(unit: UnitOfWork) -> Decided:
                return await identity.reset_password(unit, user.id, new_hash)

            context = CommandContext(
                actor=Actor(ActorKind.ADMIN, "cli:reset-password"),
                tenant_id=user.tenant_id,
                source="local",
            )
            try:
                await CommandExecutor(Repository(store)).run(
                    context, RESET_ACTION, decide, source="local", target=user.id
                )
            except CommandFailed as failed:
                raise failed.error from None
        finally:
            await store.close()
    return password


async def find_user(store: PostgresEventStore, schema: str, email: str) -> User:
    """The account with this address: by its claim, else (the first admin, made before
    addresses were claimed) by the read model of users."""
    repository = Repository(store)
    with contextlib.suppress(NotFound):
        claim = await repository.get(claim_id(email), EmailClaim)
        if claim.user_id is not None:
            return await repository.get(claim.user_id, User)
    page = await DocumentQueries(schema).page(
        store.pool, kind="usr", tenant_id=None, filters={"email": email}, limit=2
    )
    for document in page.items:
        user = await repository.get(document.resource_id, User)
        if not user.disabled:
            return user
    raise NotFound(f"no account has the address {email}")


async def run_admin(settings: Settings, command: str, email: str) -> int:
    if command != "reset-password":
        raise AssertionError(command)
    try:
        password = await reset_password(settings, email)
    except DomainError as error:
        print(f"scloud admin reset-password: {error.detail}", file=sys.stderr)
        return 1
    print(f"New password for {email}: {password}")
    print("(shown once; every earlier sign-in of the account has ended)")
    return 0
