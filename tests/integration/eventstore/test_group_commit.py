"""Group commit: each request in a shared batch gets its own outcome, and command ids dedupe."""

from __future__ import annotations

import asyncio

import pytest

from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import (
    AppendResult,
    ConcurrencyConflict,
    IdempotencyKeyReused,
)
from tests.integration.eventstore.builders import OpenStore, event, request, stream


async def test_stale_requests_fail_alone_and_the_rest_commit(store: PostgresEventStore) -> None:
    existing = [stream() for _ in range(3)]
    await store.append(request(*(event(s, 1) for s in existing)))
    fresh = [stream() for _ in range(61)]
    requests = [request(event(s, 1)) for s in fresh]
    for slot, originator_id in zip((5, 30, 60), existing, strict=True):
        requests.insert(slot, request(event(originator_id, 1, state=b'{"stale":true}')))
    assert len(requests) == 64

    outcomes = await asyncio.gather(*(store.append(r) for r in requests), return_exceptions=True)

    conflicts = [i for i, o in enumerate(outcomes) if isinstance(o, ConcurrencyConflict)]
    assert conflicts == [5, 30, 60]
    committed = [o for o in outcomes if isinstance(o, AppendResult)]
    assert len(committed) == 61
    assert all(not o.replayed and len(o.positions) == 1 for o in committed)
    assert len({o.positions[0] for o in committed}) == 61

    log = await store.read_all()
    assert len(log) == 3 + 61
    assert {e.originator_id for e in log[3:]} == set(fresh)
    for originator_id in existing:
        (only,) = await store.read_stream(originator_id)
        assert only.state == b'{"v":1}'
    by_position = {e.position: e.originator_id for e in log}
    for result, originator_id in zip(committed, fresh, strict=True):
        assert by_position[result.positions[0]] == originator_id


async def test_a_repeated_command_in_a_batch_is_replayed(store: PostgresEventStore) -> None:
    first = await store.append(
        request(event(stream(), 1), command_id="cmd-1", fingerprint=b"f1", result=b"r1")
    )
    assert not first.replayed

    repeat, second, third = await asyncio.gather(
        store.append(
            request(event(stream(), 1), command_id="cmd-1", fingerprint=b"f1", result=b"other")
        ),
        store.append(request(event(stream(), 1), command_id="cmd-2", fingerprint=b"f2")),
        store.append(request(event(stream(), 1), command_id="cmd-3", fingerprint=b"f3")),
    )
    assert repeat == AppendResult(first.positions, b"r1", replayed=True)
    assert not second.replayed
    assert not third.replayed
    assert await store.last_position() == 3
    record = await store.find_command("cmd-1")
    assert record is not None
    assert (record.fingerprint, record.positions, record.result) == (b"f1", (1,), b"r1")


@pytest.mark.parametrize("spread", [False, True], ids=["one-store", "four-stores"])
async def test_duplicate_command_ids_write_once(
    store: PostgresEventStore, open_store: OpenStore, spread: bool
) -> None:
    stores = [store, *[await open_store() for _ in range(3)]] if spread else [store]
    streams = [stream() for _ in range(12)]
    outcomes = await asyncio.gather(
        *(
            stores[i % len(stores)].append(
                request(event(s, 1), command_id="same", fingerprint=b"fp", result=b"ok")
            )
            for i, s in enumerate(streams)
        )
    )
    originals = [o for o in outcomes if not o.replayed]
    assert len(originals) == 1
    assert all(o.positions == originals[0].positions and o.result == b"ok" for o in outcomes)
    assert len(await store.read_all()) == 1


async def test_a_reused_key_with_another_body_is_refused(store: PostgresEventStore) -> None:
    outcomes = await asyncio.gather(
        *(
            store.append(request(event(stream(), 1), command_id="key", fingerprint=bytes([n])))
            for n in range(5)
        ),
        return_exceptions=True,
    )
    winners = [o for o in outcomes if isinstance(o, AppendResult)]
    assert len(winners) == 1
    assert not winners[0].replayed
    assert sum(isinstance(o, IdempotencyKeyReused) for o in outcomes) == 4
    assert len(await store.read_all()) == 1


async def test_a_conflicting_command_is_not_remembered(store: PostgresEventStore) -> None:
    taken = stream()
    await store.append(request(event(taken, 1)))
    with pytest.raises(ConcurrencyConflict):
        await store.append(request(event(taken, 1), command_id="retry-me", fingerprint=b"x"))
    assert await store.find_command("retry-me") is None
    retried = await store.append(request(event(taken, 2), command_id="retry-me", fingerprint=b"x"))
    assert not retried.replayed
    assert retried.positions == (2,)


async def test_versions_within_one_request_must_follow_each_other(
    store: PostgresEventStore,
) -> None:
    originator_id = stream()
    with pytest.raises(ConcurrencyConflict):
        await store.append(request(event(originator_id, 1), event(originator_id, 3)))
    with pytest.raises(ConcurrencyConflict):
        await store.append(request(event(originator_id, 1), event(originator_id, 1)))
    assert await store.read_all() == []


async def test_a_version_that_skips_ahead_is_refused(store: PostgresEventStore) -> None:
    """``PostgresEventStore.append`` promises ConcurrencyConflict when a version does not
    follow the stream's current version; a gap makes the stream unloadable (the library's
    aggregate raises OriginatorVersionError on replay)."""
    originator_id = stream()
    await store.append(request(event(originator_id, 1)))
    with pytest.raises(ConcurrencyConflict):
        await store.append(request(event(originator_id, 3)))
    with pytest.raises(ConcurrencyConflict):
        await store.append(request(event(stream(), 2)))
    assert [e.originator_version for e in await store.read_all()] == [1]


async def test_a_gap_filled_later_in_the_same_batch_is_still_refused(
    store: PostgresEventStore,
) -> None:
    """v3 queued before v2 in one batch: v3 skipped ahead when it was positioned.

    Accepting both would put v3 at a lower position than v2, so anything following
    positions (projections, the relay, the library's notification log) would see the
    stream's versions go backwards.
    """
    originator_id = stream()
    await store.append(request(event(originator_id, 1)))
    ahead, next_ = await asyncio.gather(
        store.append(request(event(originator_id, 3))),
        store.append(request(event(originator_id, 2))),
        return_exceptions=True,
    )
    assert isinstance(next_, AppendResult)
    assert isinstance(ahead, ConcurrencyConflict)
    by_position = [e.originator_version for e in await store.read_all()]
    assert by_position == [1, 2]


async def test_close_settles_appends_in_flight(database_url: str, schema: str) -> None:
    """Closing the store must not leave callers awaiting a batch forever."""
    closing = await PostgresEventStore.open(database_url, schema)
    appends = [asyncio.create_task(closing.append(request(event(stream(), 1)))) for _ in range(20)]
    # Wait until the committer has taken the batch off its queue and is writing it.
    committer = closing._committer
    async with asyncio.timeout(5):
        while committer._task is None or not committer._queue.empty():
            await asyncio.sleep(0)
    await closing.close()

    _, pending = await asyncio.wait(appends, timeout=2)
    for task in pending:
        task.cancel()
    assert not pending, f"{len(pending)} appends never settled after close()"
