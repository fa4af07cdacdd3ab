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

            async def decide(unit: UnitOfWork) -> Decided:
                return await identity.reset_password(unit, email, new_hash)

            repository = Repository(store)
            context = CommandContext(
                actor=Actor(ActorKind.ADMIN, "cli:reset-password"),
                tenant_id=await _tenant_of(repository, email),
                source="local",
            )
            try:
                await CommandExecutor(repository).run(context, RESET_ACTION, decide)
            except CommandFailed as failed:
                raise failed.error from None
        finally:
            await store.close()
    return password


async def _tenant_of(repository: Repository, email: str) -> str | None:
    """The account's tenant, so that the reset is in that tenant's audit log too."""
    try:
        claim = await repository.get(claim_id(email), EmailClaim)
        if claim.user_id is None:
            return None
        return (await repository.get(claim.user_id, User)).tenant_id
    except NotFound:
        return None


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
