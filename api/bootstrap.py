"""The composition root of the server processes: ``scloud run``, ``api`` and ``worker``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import nats
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from api.app import build_app
from api.server import ApiRunner
from api.services.backpressure import BuildBackpressure, BuildLimits, TenantRateLimit
from api.services.compute import fleet_cache
from api.services.deadlines import run_deadlines
from api.services.denials import DenialRecorder
from api.services.executor import CommandExecutor
from api.services.notices import NoticeSender
from api.services.outcomes import apply_outcome
from api.services.renewals import Renewals, run_renewals
from api.services.settlement import Settlement, run_settlement
from domain.compute.scheduler import HostHealth
from domain.identity.login_throttle import LoginThrottle
from domain.identity.user import User
from domain.metadata import Actor, CommandContext
from gateways.bus.dispatcher import HostCommandDispatcher
from gateways.bus.host_health import HostHealthWatcher
from gateways.bus.hostwire import HostOutcome
from gateways.bus.ingester import OutcomeIngester
from gateways.bus.relay import EventRelay
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.repository import Repository
from gateways.mail import SmtpMailer
from gateways.passwords import generate_password, hash_password
from gateways.settings import Settings
from gateways.tokens import TokenSigner, token_key
from gateways.webhooks.dispatcher import webhook_dispatcher
from hostd.streams import HostBus, ensure_streams
from projections.audit.log import AuditLog
from projections.billing.ledger import BillingLedger
from projections.billing.orders import BillingOrders
from projections.billing.usage import MeteredUsage
from projections.identity.cache import IdentityCache
from projections.projection import Projection
from projections.resources.documents import ResourceDocuments
from projections.resources.index import ResourceIndex
from projections.resources.queries import DocumentQueries
from projections.runner import ProjectionRunner

log = logging.getLogger(__name__)

FIRST_ADMIN_COMMAND = "bootstrap:first-admin"


@dataclass
class Platform:
    """Everything a server process shares, opened once."""

    settings: Settings
    store: PostgresEventStore
    repository: Repository
    nats: NATS
    js: JetStreamContext
    tokens: TokenSigner
    identity: IdentityCache = field(default_factory=IdentityCache)
    login_throttle: LoginThrottle = field(default_factory=LoginThrottle)

    def __post_init__(self) -> None:
        self.executor = CommandExecutor(self.repository)
        self.host_health = HostHealthWatcher(self.js)
        self.documents = DocumentQueries(self.settings.schema)
        settings = self.settings
        self.build_backpressure = BuildBackpressure(
            settings.schema,
            BuildLimits(
                max_waiting=settings.max_waiting_builds,
                max_wait_seconds=settings.max_build_wait_seconds,
                max_dispatch_lag=settings.max_dispatch_lag_events,
            ),
        )
        self.tenant_rate = TenantRateLimit(settings.tenant_requests_per_second)
        self.denials = DenialRecorder(
            self.repository,
            self.documents,
            per_source=self.settings.denials_per_source,
            window=self.settings.denials_window_seconds,
            linger=self.settings.denials_linger_seconds,
        )

    async def hosts_for_placing(self) -> tuple[list[str], Mapping[str, HostHealth]]:
        """Every host's id and the health of those that beat, as placements read them."""
        await self.host_health.start()
        documents, pool = self.documents, self.store.pool
        hosts = await fleet_cache(self.repository).host_ids(
            lambda: documents.ids_of_kind_as_of(pool, "hst")
        )
        return hosts, self.host_health.snapshot(hosts)

    def projections(self) -> list[Projection]:
        schema = self.settings.schema
        return [
            ResourceIndex(schema),
            ResourceDocuments(schema),
            AuditLog(schema),
            MeteredUsage(schema),
            BillingLedger(schema),
            BillingOrders(schema),
        ]


@contextlib.asynccontextmanager
async def open_platform(
    settings: Settings, database_url: str, nats_url: str
) -> AsyncIterator[Platform]:
    store = await PostgresEventStore.open(database_url, settings.schema)
    try:
        client = await nats.connect(
            nats_url, name="scloud", max_reconnect_attempts=-1, drain_timeout=5
        )
        try:
            signer = TokenSigner(token_key(settings.token_key, settings.state_dir))
            platform = Platform(
                settings, store, Repository(store), client, client.jetstream(), signer
            )
            # Read models exist before anything is served, even while no worker runs yet.
            for projection in platform.projections():
                await ProjectionRunner(store, projection).setup()
            await platform.identity.catch_up(store)
            platform.denials.start()
            try:
                yield platform
            finally:
                # Before the store closes: a clean shutdown loses no denial.
                await platform.denials.close()
        finally:
            await client.drain()
    finally:
        await store.close()


async def ensure_first_admin(platform: Platform) -> tuple[str, str | None]:
    """Create the first platform admin once; the password is returned only that time."""
    settings = platform.settings
    password = settings.admin_password or generate_password()
    admin = User(
        email=settings.admin_email,
        password_hash=hash_password(password),
        roles=["platform:admin"],
        tenant_id=None,
        kind="platform",
    )
    context = CommandContext(actor=Actor.system("bootstrap"), command_id=FIRST_ADMIN_COMMAND)
    result = await platform.repository.save(context, admin, result=admin.id.encode())
    return settings.admin_email, None if result.replayed else password


async def first_admin_token(platform: Platform, ttl_seconds: int = 3600) -> str:
    """A bearer token of the first admin, for this machine's own set-up calls (no password
    needed: whoever runs the platform holds its token key anyway)."""
    found = await platform.store.find_command(FIRST_ADMIN_COMMAND)
    if found is None:
        raise RuntimeError("the first admin does not exist yet")
    admin_id = found.result.decode()
    async with asyncio.timeout(30):
        while (user := platform.identity.user(admin_id)) is None:
            await platform.identity.catch_up(platform.store)
            if platform.identity.user(admin_id) is None:
                await asyncio.sleep(0.1)
    token, _ = platform.tokens.issue(admin_id, user.token_generation, ttl_seconds)
    return token


async def run_worker(platform: Platform, stop: asyncio.Event, *, relay: bool = True) -> None:
    """Projections (and the relay to NATS), until ``stop`` is set."""
    runners = [ProjectionRunner(platform.store, p) for p in platform.projections()]
    for runner in runners:
        await runner.setup()
    jobs: list[Awaitable[None]] = [runner.follow(stop) for runner in runners]
    webhooks = webhook_dispatcher(platform.store, platform.repository, platform.settings)
    jobs.append(webhooks.run(stop))
    jobs.extend(compute_jobs(platform, stop))
    notices = NoticeSender(
        platform.executor, platform.settings.schema, SmtpMailer(), platform.settings.state_dir
    )
    jobs.append(notices.run(stop))
    every = platform.settings.billing_settle_seconds
    if every > 0:
        settlement = Settlement(platform.executor, platform.settings.schema)
        jobs.append(run_settlement(settlement, stop, every))
        jobs.append(run_renewals(Renewals(platform.executor, platform.settings.schema), stop))
    if relay:
        settings = platform.settings
        exporter = EventRelay(
            platform.store, platform.js, stream=settings.stream_name, prefix=settings.subject_prefix
        )
        jobs.append(exporter.run(stop))
    await until_first_failure(jobs, stop)


def compute_jobs(platform: Platform, stop: asyncio.Event) -> list[Awaitable[None]]:
    """The compute process managers: steps to hosts, outcomes back, deadlines, lost hosts,
    overloaded hosts, drift between what hosts report and what should be there."""
    from api.services.drift import DriftHealer
    from api.services.host_failure import HostFailures, run_host_failures
    from api.services.host_registration import HostRegistrar
    from api.services.rebalance import Rebalancer, run_rebalancer

    schema = platform.settings.schema

    async def ensure() -> None:
        await ensure_streams(platform.js, HostBus())

    dispatcher = HostCommandDispatcher(platform.repository, platform.js, schema, ensure)

    async def handle(outcome: HostOutcome) -> None:
        await apply_outcome(platform.executor, outcome)

    async def born() -> datetime | None:
        first = await platform.store.read_all(limit=1, headers_only=True)
        return first[0].recorded_at if first else None

    ingester = OutcomeIngester(
        platform.js,
        handle,
        ensure_streams=ensure,
        durable=f"scloud-outcomes-{schema}",
        born=born,
    )
    return [
        dispatcher.run(stop),
        ingester.run(stop),
        run_deadlines(platform.executor, schema, stop),
        HostRegistrar(
            platform.executor, platform.nats, platform.settings.host_register_subject
        ).run(stop),
        run_host_failures(
            HostFailures(
                platform.executor,
                schema,
                platform.host_health,
                lambda: platform.settings.host_down_after_seconds,
            ),
            stop,
        ),
        run_rebalancer(
            Rebalancer(
                platform.executor,
                schema,
                platform.host_health,
                lambda: platform.settings.rebalance_load_per_core,
                lambda: platform.settings.rebalance_after_seconds,
            ),
            stop,
        ),
        DriftHealer(platform.executor, schema, platform.nats).run(stop),
    ]


async def run_api(platform: Platform, stop: asyncio.Event, on_ready: Callable[[str], None]) -> None:
    follower = asyncio.create_task(platform.identity.follow(platform.store, stop))
    runner = ApiRunner(build_app(platform), access_log=None)
    await runner.setup()
    settings = platform.settings
    site = web.TCPSite(runner, settings.api_host, settings.api_port)
    await site.start()
    on_ready(f"http://{settings.api_host}:{settings.api_port}")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        follower.cancel()


async def until_first_failure(jobs: Sequence[Awaitable[None]], stop: asyncio.Event) -> None:
    """Run jobs together; if one fails, stop the others and raise its error."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
