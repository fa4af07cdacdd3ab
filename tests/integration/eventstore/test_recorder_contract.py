"""The eventsourcing library's recorder contract, ported to our async event store.

Each test names the library test it ports (``eventsourcing/tests/persistence.py``):

- ``test_insert_select``: ``ApplicationRecorderTestCase.test_insert_select``. The library's
  ``select_notifications(start, limit, stop, inclusive_of_start)`` maps to our
  ``read_all(after, limit, until)`` (``after`` is exclusive, so library ``start=n`` is our
  ``after=n - 1``); its ``topics`` filter maps to our ``tenant_id`` filter; its
  ``IntegrityError`` on a repeated insert is our ``ConcurrencyConflict``; its
  ``max_notification_id`` (``None`` when empty) is our ``last_position`` (0 when empty).
- ``test_concurrent_no_conflicts``: ``ApplicationRecorderTestCase.test_concurrent_no_conflicts``,
  scaled down (10 writers x 20 appends x 50 events), plus the check the library leaves to
  other tests: every position unique and the log gap-free.
- ``test_non_interleaving_positions``: ``NonInterleavingNotificationIDsBaseCase.test``, once
  with both appends through one store (one group commit) and once through two stores
  (separate transactions racing for the table lock). Versions start at 1, not 0, because
  our aggregates start at 1 and ``read_stream`` starts after version 0.
- ``test_lower_position_never_inserted_later``: what applies to an event store of
  ``ProcessRecorderTestCase.test_raises_when_lower_inserted_later``.
"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import ConcurrencyConflict, RecordedEvent
from tests.integration.eventstore.builders import OpenStore, event, request, stream

# Our writer assigns positions from the head under the table lock, so (like the library's
# PostgreSQL recorder, EXPECT_CONTIGUOUS_NOTIFICATION_IDS) positions have no holes.
EXPECT_CONTIGUOUS_POSITIONS = True


def positions(events: list[RecordedEvent]) -> list[int]:
    return [e.position for e in events]


async def test_insert_select(store: PostgresEventStore) -> None:
    # Reading works when there is nothing to read.
    assert await store.read_all(after=0, limit=3) == []
    assert await store.read_all(after=0, limit=3, tenant_id="t-1") == []
    assert await store.last_position() == 0

    first, second = stream(), stream()
    one = event(first, 1, topic="topic1", state=b"state1", tenant_id="t-1")
    two = event(first, 2, topic="topic2", state=b"state2", tenant_id="t-2")
    three = event(second, 1, topic="topic3", state=b"state3", tenant_id="t-3")

    written = await store.append(request(one, two))
    if EXPECT_CONTIGUOUS_POSITIONS:
        assert written.positions == (1, 2)
    written = await store.append(request(three))
    if EXPECT_CONTIGUOUS_POSITIONS:
        assert written.positions == (3,)

    assert [e.originator_version for e in await store.read_stream(first)] == [1, 2]
    assert [e.originator_version for e in await store.read_stream(second)] == [1]

    # Writing the same version again conflicts, and a conflicting append leaves nothing
    # behind, not even its events that did not conflict.
    with pytest.raises(ConcurrencyConflict):
        await store.append(request(three))
    bystander = stream()
    with pytest.raises(ConcurrencyConflict):
        await store.append(request(event(bystander, 1), event(first, 2)))
    assert await store.read_stream(bystander) == []
    assert await store.last_position() == 3

    everything = await store.read_all(after=0, limit=10)
    assert positions(everything) == [1, 2, 3]
    expected = [(first, 1, one), (first, 2, two), (second, 1, three)]
    for recorded, (originator_id, version, sent) in zip(everything, expected, strict=True):
        assert recorded.originator_id == originator_id
        assert recorded.originator_version == version
        assert recorded.topic == sent.topic
        assert recorded.state == sent.state
        assert recorded.tenant_id == sent.metadata.tenant_id
        assert recorded.envelope() == sent.metadata

    # Library start=1 (inclusive) is our after=0; stop is our until.
    assert positions(await store.read_all(after=0, until=2)) == [1, 2]
    assert positions(await store.read_all(after=1)) == [2, 3]
    assert positions(await store.read_all(after=2)) == [3]
    assert positions(await store.read_all(after=3)) == []

    # The library's topic filter; ours is by tenant.
    assert positions(await store.read_all(tenant_id="t-1")) == [1]
    assert positions(await store.read_all(tenant_id="t-2", limit=3)) == [2]
    assert positions(await store.read_all(tenant_id="t-3", limit=3)) == [3]
    assert positions(await store.read_all(tenant_id="t-9")) == []
    assert positions(await store.read_all(after=1, tenant_id="t-1")) == []

    assert await store.last_position() == 3

    # Limits, alone and with after and until.
    assert positions(await store.read_all(after=0, limit=1)) == [1]
    assert positions(await store.read_all(after=1, limit=1)) == [2]
    assert positions(await store.read_all(after=1, limit=2)) == [2, 3]
    assert positions(await store.read_all(after=2, limit=1)) == [3]
    assert positions(await store.read_all(after=3, limit=1)) == []
    assert positions(await store.read_all(after=1, limit=10, until=2)) == [2]
    assert positions(await store.read_all(after=0, limit=10, until=2)) == [1, 2]
    assert positions(await store.read_all(after=2, limit=10, until=2)) == []

    # Streams read by version range.
    assert [e.originator_version for e in await store.read_stream(first, after_version=1)] == [2]
    assert [e.originator_version for e in await store.read_stream(first, to_version=1)] == [1]


async def test_concurrent_no_conflicts(store: PostgresEventStore) -> None:
    writers, appends_per_writer, events_per_append = 10, 20, 50
    errors: list[BaseException] = []
    stop_reading = asyncio.Event()
    written: list[str] = []

    async def write() -> None:
        for _ in range(appends_per_writer):
            originator_id = stream()
            events = [event(originator_id, v) for v in range(1, events_per_append + 1)]
            try:
                await store.append(request(*events))
            except Exception as error:
                errors.append(error)
                return
            written.append(originator_id)
            await asyncio.sleep(0.0001)

    async def read_continuously() -> None:
        while not stop_reading.is_set():
            try:
                await store.read_all(after=0, limit=10)
            except Exception as error:
                errors.append(error)
                return
            await asyncio.sleep(0.0001)

    readers = [asyncio.create_task(read_continuously()) for _ in range(2)]
    await asyncio.gather(*(write() for _ in range(writers)))
    stop_reading.set()
    await asyncio.gather(*readers)

    assert errors == []
    total = writers * appends_per_writer * events_per_append
    everything = await store.read_all(after=0, limit=total + 1)
    assert len(everything) == total
    assert len(set(positions(everything))) == total
    assert positions(everything) == list(range(1, total + 1))
    assert await store.last_position() == total
    for originator_id in written[:5]:
        versions = [e.originator_version for e in await store.read_stream(originator_id)]
        assert versions == list(range(1, events_per_append + 1))


@pytest.mark.parametrize("separate_stores", [False, True], ids=["one-store", "two-stores"])
async def test_non_interleaving_positions(
    store: PostgresEventStore, open_store: OpenStore, separate_stores: bool
) -> None:
    insert_num = 1000
    other = await open_store() if separate_stores else store
    before = await store.last_position()
    first, second = stream(), stream()
    race_started = asyncio.Event()

    async def insert_stack(target: PostgresEventStore, originator_id: str) -> None:
        stack = [event(originator_id, v, state=b"{}") for v in range(1, insert_num + 1)]
        await race_started.wait()
        await target.append(request(*stack))

    racing = asyncio.gather(insert_stack(store, first), insert_stack(other, second))
    await asyncio.sleep(0.01)
    race_started.set()
    await racing

    log = await store.read_all(after=before, limit=2 * insert_num)
    ids_first = [e.position for e in log if e.originator_id == first]
    ids_second = [e.position for e in log if e.originator_id == second]
    assert len(ids_first) == insert_num
    assert len(ids_second) == insert_num
    if max(ids_first) > min(ids_second):
        assert min(ids_first) > max(ids_second)
    else:
        assert min(ids_second) > max(ids_first)


async def test_lower_position_never_inserted_later(
    store: PostgresEventStore, open_store: OpenStore, sql: asyncpg.Connection
) -> None:
    """A writer whose idea of the head is stale still writes above the head.

    The library's test is about tracking records (a lower upstream position recorded after
    a higher one is refused); that part is covered by the projection checkpoint tests. For
    the event store the same danger is a writer giving an event a position below one a
    reader may already have passed. Here a store learns the head, another store moves it,
    and the first store's next event must still land above everything.
    """
    other = await open_store()
    early = await store.append(request(event(stream(), 1)))
    assert early.positions == (1,)
    moved = await other.append(request(*(event(stream(), 1) for _ in range(3))))
    assert moved.positions == (2, 3, 4)

    late = await store.append(request(event(stream(), 1)))
    assert late.positions == (5,)
    assert positions(await store.read_all()) == [1, 2, 3, 4, 5]

    # The database itself refuses a batch computed from a stale head, and writes nothing.
    row = await sql.fetchrow(
        f"SELECT status, head_position FROM {store.schema}.scloud_append("
        "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        1,  # the head this caller last saw; it is really 5
        [stream()],
        [1],
        ["topic"],
        [b"{}"],
        [2],
        ["00000000000000000000000000000001"],
        [None],
        [b"{}"],
        [bytes(32)],
        [],
        [],
        [],
        [],
        "unused_channel",
    )
    assert row is not None
    assert (row["status"], row["head_position"]) == ("stale", 5)
    assert await store.last_position() == 5
