"""The per-tenant NATS user of docs/nats.md, taken verbatim from the doc, on a real nats-server.

Each test starts its own nats-server (JetStream in a tmp dir, 127.0.0.1 only) with a platform
user allowed everything (it creates the stream and publishes, as the relay does) and two
tenant users whose entries are the doc's example with the tenant id and password replaced.
The machine's shared NATS is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import re
import secrets
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import BadRequestError

from domain.ids import new_id
from gateways.bus.subjects import event_subject, tenant_filter
from gateways.embedded.child import ChildProcess, free_loopback_port
from gateways.embedded.errors import ServiceStartFailed
from gateways.embedded.nats import nats_server_binary
from gateways.embedded.probe import jetstream_answers

DOC = Path(__file__).resolve().parents[3] / "docs" / "nats.md"
DOC_TENANT = "tnt-01jd3x0000000000000000000z"
STREAM = "SCLOUD_EVENTS"
TOPIC = "domain.compute.instance:Instance.Started"
REFUSAL_SECONDS = 0.5
"""How long a refused request waits for the answer that never comes (loopback answers in ms)."""
_STOP = ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0))

pytestmark = pytest.mark.timeout(30)


def documented_user_entry() -> str:
    """The ``{ user: … }`` entry of the tenant user in the doc's configuration block."""
    blocks = re.findall(r"^```\n(.*?)^```", DOC.read_text(), re.MULTILINE | re.DOTALL)
    configs = [block for block in blocks if "authorization {" in block]
    assert len(configs) == 1, "docs/nats.md should show one nats-server authorization block"
    found = re.search(r"users = \[\n(.*)\n\s*\]\n\}\s*$", configs[0], re.DOTALL)
    assert found is not None, "the doc's authorization block should hold a users = [ … ] list"
    entry = found.group(1)
    assert DOC_TENANT in entry, f"the doc's example user should be {DOC_TENANT}"
    return entry


def tenant_user_entry(tenant: str, password: str, *, may_create: bool) -> str:
    """The doc's entry for ``tenant`` with a plaintext password; without the CREATE line for
    the variant where the platform creates the consumer (as the doc's "Limit" says)."""
    entry, replaced = re.subn(
        r'password: "[^"]*"', f"password: {json.dumps(password)}", documented_user_entry()
    )
    assert replaced == 1, "the doc's example user should have one password"
    if not may_create:
        lines = entry.splitlines()
        kept = [line for line in lines if "$JS.API.CONSUMER.CREATE." not in line]
        assert len(kept) == len(lines) - 1, "the doc should allow exactly one CONSUMER.CREATE"
        entry = "\n".join(kept)
    return entry.replace(DOC_TENANT, tenant)


def reader(tenant: str) -> str:
    return f"{tenant}-reader"


@dataclass(frozen=True)
class Bus:
    port: int
    platform_password: str
    passwords: dict[str, str]
    a: str
    b: str

    async def platform(self) -> Client:
        return await nats.connect(
            f"nats://127.0.0.1:{self.port}",
            user="platform",
            password=self.platform_password,
            allow_reconnect=False,
        )

    async def tenant(self, tenant: str, violations: Violations | None = None) -> Client:
        """Connected as the doc says: the tenant's user and its own inbox prefix."""
        return await nats.connect(
            f"nats://127.0.0.1:{self.port}",
            user=tenant,
            password=self.passwords[tenant],
            inbox_prefix=f"_INBOX.{tenant}",
            allow_reconnect=False,
            error_cb=(violations or Violations()).record,
        )


class Violations:
    """The client's error callback: keeps the permission violations the server reports."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    async def record(self, error: Exception) -> None:
        self.messages.append(str(error).lower())

    def saw(self, operation: str, subject: str) -> bool:
        wanted = f'permissions violation for {operation} to "{subject.lower()}"'
        return any(wanted in message for message in self.messages)

    async def wait_for(self, operation: str, subject: str) -> None:
        async with asyncio.timeout(2):
            while not self.saw(operation, subject):
                await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def tenant_nats(directory: Path, *, tenants_create: bool) -> AsyncIterator[Bus]:
    """A nats-server of our own with the platform user and two tenant users of the doc."""
    a, b = new_id("tnt"), new_id("tnt")
    passwords = {tenant: secrets.token_hex(16) for tenant in (a, b)}
    platform_password = secrets.token_hex(16)
    users = "\n".join(
        [f"    {{ user: platform, password: {json.dumps(platform_password)} }}"]
        + [tenant_user_entry(t, passwords[t], may_create=tenants_create) for t in (a, b)]
    )
    for attempt in range(3):
        port = free_loopback_port()
        config = directory / "nats-server.conf"
        config.write_text(
            f"listen: {json.dumps(f'127.0.0.1:{port}')}\n"
            f"jetstream {{ store_dir: {json.dumps(str(directory))} }}\n"
            f"authorization {{\n  users = [\n{users}\n  ]\n}}\n"
        )
        child = await ChildProcess.spawn(
            "nats-server",
            [str(nats_server_binary()), "--config", str(config)],
            log=directory / "nats-server.log",
            death_signal=signal.SIGTERM,  # gone with us, even if pytest is killed
        )
        try:
            url = f"nats://platform:{platform_password}@127.0.0.1:{port}"
            async with child.startup_deadline(10):
                await child.wait_until(functools.partial(jetstream_answers, url))
            break
        except ServiceStartFailed as failure:
            await child.stop(_STOP)
            if "address already in use" not in failure.log_tail.lower() or attempt == 2:
                raise
        except BaseException:
            await child.stop(_STOP)
            raise
    try:
        yield Bus(port, platform_password, passwords, a, b)
    finally:
        await child.stop(_STOP)
        assert child.returncode is not None, "nats-server outlived its test"


@pytest.fixture
async def bus(tmp_path: Path) -> AsyncIterator[Bus]:
    async with tenant_nats(tmp_path, tenants_create=True) as running:
        yield running


async def publish_events(platform: Client, plan: list[tuple[str, str]]) -> None:
    """Publish (tenant, label) pairs into the stream in order, as the relay would."""
    js = platform.jetstream()
    for tenant, label in plan:
        subject = event_subject(tenant, f"i-{label}", TOPIC)
        await js.publish(subject, label.encode(), stream=STREAM, headers={"Nats-Msg-Id": label})


async def refused(
    attempts: dict[str, Callable[[], Awaitable[object]]], violations: Violations
) -> None:
    """Each attempt times out (no answer ever comes) and the server reports a publish
    permission violation for its subject; run at once so the waits overlap."""
    outcomes = await asyncio.gather(
        *(attempt() for attempt in attempts.values()), return_exceptions=True
    )
    for subject, outcome in zip(attempts, outcomes, strict=True):
        assert type(outcome) is nats.errors.TimeoutError, (subject, outcome)
        await violations.wait_for("publish", subject)


@pytest.mark.parametrize(
    "tenants_create", [True, False], ids=["tenant-creates", "platform-creates"]
)
async def test_tenant_reads_exactly_its_own_events_in_order(
    tmp_path: Path, tenants_create: bool
) -> None:
    async with tenant_nats(tmp_path, tenants_create=tenants_create) as bus:
        a, b = bus.a, bus.b
        platform = await bus.platform()
        violations = Violations()
        client = await bus.tenant(a, violations)
        try:
            await platform.jetstream().add_stream(name=STREAM, subjects=["events.>"])
            plan = [(a, "a1"), (b, "b1"), (b, "b2"), (a, "a2"), (b, "b3"), (a, "a3"), (b, "b4")]
            await publish_events(platform, plan)
            if not tenants_create:
                await platform.jetstream().add_consumer(
                    STREAM,
                    ConsumerConfig(
                        name=reader(a),
                        durable_name=reader(a),
                        filter_subject=tenant_filter(a),
                        ack_policy=AckPolicy.EXPLICIT,
                    ),
                )

            js = client.jetstream(timeout=2)
            subscription = await js.pull_subscribe(
                tenant_filter(a), durable=reader(a), stream=STREAM
            )
            messages = await subscription.fetch(10, timeout=1)
            assert [m.data for m in messages] == [b"a1", b"a2", b"a3"]
            assert [m.subject for m in messages] == [
                event_subject(a, f"i-{label}", TOPIC) for label in ("a1", "a2", "a3")
            ]
            assert [m.metadata.sequence.stream for m in messages] == [1, 4, 6]
            for message in messages:
                await message.ack_sync(timeout=2)  # the server's answer comes to our inbox

            await publish_events(platform, [(b, "b5"), (a, "a4"), (b, "b6")])
            later = await subscription.fetch(10, timeout=1)
            assert [m.data for m in later] == [b"a4"]  # the acknowledged ones do not come back
            await later[0].ack_sync(timeout=2)
            with pytest.raises(nats.errors.TimeoutError):
                await subscription.fetch(1, timeout=0.3)

            info = await subscription.consumer_info()
            assert info.config.filter_subject == f"events.{a}.>"
            assert info.ack_floor is not None and info.ack_floor.stream_seq == 9
            assert (info.num_pending, info.num_ack_pending) == (0, 0)
            assert violations.messages == []  # everything it did was allowed

            if not tenants_create:
                # Its consumer is the platform's: the tenant cannot change it, not even into
                # a push consumer, nor recreate it after the platform removed it.
                push = ConsumerConfig(
                    name=reader(a),
                    durable_name=reader(a),
                    filter_subject=tenant_filter(a),
                    deliver_subject=f"_INBOX.{a}.push",
                )
                create = f"$JS.API.CONSUMER.CREATE.{STREAM}.{reader(a)}.events.{a}.>"
                fast = client.jetstream(timeout=REFUSAL_SECONDS)
                await refused({create: lambda: fast.add_consumer(STREAM, push)}, violations)
                assert (await subscription.consumer_info()).config.deliver_subject is None
        finally:
            await client.close()
            await platform.close()


async def test_tenant_cannot_make_a_consumer_that_reads_other_events(bus: Bus) -> None:
    a, b = bus.a, bus.b
    platform = await bus.platform()
    other = await bus.tenant(b)
    violations = Violations()
    client = await bus.tenant(a, violations)
    try:
        await platform.jetstream().add_stream(name=STREAM, subjects=["events.>"])
        await publish_events(platform, [(a, "a1"), (b, "b1")])
        theirs = await other.jetstream(timeout=2).pull_subscribe(
            tenant_filter(b), durable=reader(b), stream=STREAM
        )
        js = client.jetstream(timeout=REFUSAL_SECONDS)

        def consumer(name: str, filter_subject: str | None) -> ConsumerConfig:
            return ConsumerConfig(name=name, durable_name=name, filter_subject=filter_subject)

        prefix = "$JS.API.CONSUMER"
        await refused(
            {
                # its own consumer name, another tenant's filter or none
                f"{prefix}.CREATE.{STREAM}.{reader(a)}.events.{b}.>": lambda: js.add_consumer(
                    STREAM, consumer(reader(a), tenant_filter(b))
                ),
                f"{prefix}.CREATE.{STREAM}.{reader(a)}.events.>": lambda: js.add_consumer(
                    STREAM, consumer(reader(a), "events.>")
                ),
                f"{prefix}.CREATE.{STREAM}.{reader(a)}": lambda: js.add_consumer(
                    STREAM, consumer(reader(a), None)
                ),
                # the pre-2.9 durable form and an ephemeral consumer
                f"{prefix}.DURABLE.CREATE.{STREAM}.{reader(a)}": lambda: js.add_consumer(
                    STREAM, durable_name=reader(a), filter_subject=tenant_filter(a)
                ),
                f"{prefix}.CREATE.{STREAM}": lambda: js.add_consumer(
                    STREAM, filter_subject=tenant_filter(a)
                ),
                # the other tenant's consumer, even redefined to its own filter
                f"{prefix}.CREATE.{STREAM}.{reader(b)}.events.{a}.>": lambda: js.add_consumer(
                    STREAM, consumer(reader(b), tenant_filter(a))
                ),
                f"{prefix}.INFO.{STREAM}.{reader(b)}": lambda: js.consumer_info(STREAM, reader(b)),
                f"{prefix}.MSG.NEXT.{STREAM}.{reader(b)}": lambda: client.request(
                    f"{prefix}.MSG.NEXT.{STREAM}.{reader(b)}",
                    b'{"batch": 10}',
                    timeout=REFUSAL_SECONDS,
                ),
                # nothing about the stream or the account
                f"$JS.API.STREAM.INFO.{STREAM}": lambda: js.stream_info(STREAM),
                "$JS.API.STREAM.NAMES": lambda: js.find_stream_name_by_subject(tenant_filter(a)),
                "$JS.API.INFO": lambda: js.account_info(),
            },
            violations,
        )

        # On the one subject it may use, the server holds the body to the subject's filter.
        create = f"{prefix}.CREATE.{STREAM}.{reader(a)}.events.{a}.>"
        bodies: list[tuple[dict[str, object], int]] = [
            ({"filter_subject": f"events.{b}.>"}, 10131),  # does not match the subject
            ({"filter_subject": "events.>"}, 10131),
            ({}, 10131),
            ({"filter_subjects": [f"events.{a}.>", f"events.{b}.>"]}, 10137),  # several
        ]
        for config, err_code in bodies:
            body = {"stream_name": STREAM, "config": {"durable_name": reader(a), **config}}
            answer = await client.request(create, json.dumps(body).encode(), timeout=2)
            assert json.loads(answer.data)["error"]["err_code"] == err_code, config
        # A push consumer cannot deliver into the stream's subjects: no forged events.
        with pytest.raises(BadRequestError) as cycle:
            await js.add_consumer(
                STREAM,
                consumer(reader(a), tenant_filter(a)),
                deliver_subject=event_subject(b, "i-forged", TOPIC),
            )
        assert cycle.value.err_code == 10081  # "consumer deliver subject forms a cycle"

        consumers = await platform.jetstream().consumers_info(STREAM)
        assert [(c.name, c.config.filter_subject) for c in consumers] == [
            (reader(b), f"events.{b}.>")
        ]
        assert [m.data for m in await theirs.fetch(10, timeout=1)] == [b"b1"]
    finally:
        await client.close()
        await other.close()
        await platform.close()


async def test_tenant_cannot_subscribe_to_events_or_publish_them(bus: Bus) -> None:
    a, b = bus.a, bus.b
    platform = await bus.platform()
    other = await bus.tenant(b)
    violations = Violations()
    client = await bus.tenant(a, violations)
    try:
        await platform.jetstream().add_stream(name=STREAM, subjects=["events.>"])
        received: list[Msg] = []

        async def keep(message: Msg) -> None:
            received.append(message)

        forbidden = ["events.>", f"events.{b}.>", f"events.{a}.>", "_INBOX.>", f"_INBOX.{b}.>"]
        for subject in forbidden:
            await client.subscribe(subject, cb=keep)
        for subject in forbidden:
            await violations.wait_for("subscription", subject)

        # Traffic those subscriptions would see: events of both tenants, and the other
        # tenant pulling its events (delivered to and acknowledged from its inbox).
        await publish_events(platform, [(a, "a1"), (b, "b1"), (b, "b2")])
        theirs = await other.jetstream(timeout=2).pull_subscribe(
            tenant_filter(b), durable=reader(b), stream=STREAM
        )
        pulled = await theirs.fetch(10, timeout=1)
        assert [m.data for m in pulled] == [b"b1", b"b2"]
        for message in pulled:
            await message.ack_sync(timeout=2)

        forged = [event_subject(b, "i-forged", TOPIC), event_subject(a, "i-forged", TOPIC)]
        for subject in forged:
            await client.publish(subject, b"forged", headers={"Nats-Msg-Id": "forged"})
        await client.flush()
        for subject in forged:
            await violations.wait_for("publish", subject)
        with pytest.raises(nats.errors.TimeoutError):  # no answer from the stream either
            await client.jetstream(timeout=REFUSAL_SECONDS).publish(forged[0], b"forged")

        await platform.flush()
        await client.flush()
        assert received == []
        info = await platform.jetstream().stream_info(STREAM)
        assert info.state.messages == 3
    finally:
        await client.close()
        await other.close()
        await platform.close()


async def test_limit_a_tenant_that_creates_its_consumer_can_push_its_events_elsewhere(
    bus: Bus,
) -> None:
    """The doc's "Limit": only the filter is checked, so a push consumer delivers the tenant's
    own events (never another's) to a core subject of the account. Should nats-server start
    refusing this, the doc's paragraph is to go."""
    a, b = bus.a, bus.b
    platform = await bus.platform()
    client = await bus.tenant(a)
    try:
        await platform.jetstream().add_stream(name=STREAM, subjects=["events.>"])
        await publish_events(platform, [(a, "a1"), (b, "b1"), (a, "a2")])
        received: list[bytes] = []
        arrived = asyncio.Event()

        async def keep(message: Msg) -> None:
            received.append(message.data)
            if len(received) == 2:
                arrived.set()

        await platform.subscribe("observed.host.h-1", cb=keep)  # a platform listener
        await platform.flush()
        await client.jetstream(timeout=2).add_consumer(
            STREAM,
            name=reader(a),
            durable_name=reader(a),
            filter_subject=tenant_filter(a),
            deliver_subject="observed.host.h-1",
            ack_policy=AckPolicy.NONE,
        )
        async with asyncio.timeout(2):
            await arrived.wait()
        await asyncio.sleep(0.1)
        assert received == [b"a1", b"a2"]
    finally:
        await client.close()
        await platform.close()
