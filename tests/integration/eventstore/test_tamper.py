"""The hash chain catches events altered, removed or reordered behind the store's back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from gateways.eventstore.hashchain import ChainBreak, ChainVerifier
from gateways.eventstore.postgres import PostgresEventStore
from tests.integration.eventstore.builders import event, request, stream

Tamper = Callable[[asyncpg.Connection, str], Awaitable[object]]
EVENTS = 8


async def fill(store: PostgresEventStore) -> None:
    streams = [stream() for _ in range(3)]
    versions = dict.fromkeys(streams, 0)
    for n in range(EVENTS):
        originator_id = streams[n % 3]
        versions[originator_id] += 1
        state = f'{{"n":{n}}}'.encode()
        tenant = f"t-{n % 2}"
        await store.append(
            request(event(originator_id, versions[originator_id], state=state, tenant_id=tenant))
        )


async def verify(store: PostgresEventStore, page: int = 1000) -> int:
    verifier = ChainVerifier()
    after = 0
    while batch := await store.read_all(after=after, limit=page):
        verifier.feed(batch)
        after = batch[-1].position
    return verifier.checked


async def update_state(sql: asyncpg.Connection, s: str) -> object:
    return await sql.execute(
        f"UPDATE {s}.scloud_events SET state = '\\x7b7d' WHERE notification_id = 4"
    )


async def update_metadata(sql: asyncpg.Connection, s: str) -> object:
    return await sql.execute(
        f"UPDATE {s}.scloud_events SET metadata = "
        "replace(encode(metadata, 'escape'), '\"t-1\"', '\"t-0\"')::bytea "
        "WHERE notification_id = 4"
    )


async def update_topic(sql: asyncpg.Connection, s: str) -> object:
    return await sql.execute(
        f"UPDATE {s}.scloud_events SET topic = 'other:Topic' WHERE notification_id = 4"
    )


async def delete_event(sql: asyncpg.Connection, s: str) -> object:
    return await sql.execute(f"DELETE FROM {s}.scloud_events WHERE notification_id = 4")


async def swap_states(sql: asyncpg.Connection, s: str) -> object:
    return await sql.execute(
        f"UPDATE {s}.scloud_events AS e SET state = o.state FROM {s}.scloud_events AS o "
        "WHERE (e.notification_id, o.notification_id) IN ((4, 7), (7, 4))"
    )


async def update_tenant_column(sql: asyncpg.Connection, s: str) -> object:
    return await sql.execute(
        f"UPDATE {s}.scloud_events SET tenant_id = 't-0' WHERE notification_id = 4"
    )


async def test_an_untouched_log_verifies_whole_and_in_pages(store: PostgresEventStore) -> None:
    await fill(store)
    assert await verify(store) == EVENTS
    assert await verify(store, page=3) == EVENTS


@pytest.mark.parametrize(
    ("tamper", "broken_at"),
    [
        (update_state, 4),
        (update_metadata, 4),
        (update_topic, 4),
        (delete_event, 5),  # the gap shows at the event after it
        (swap_states, 4),
    ],
    ids=["state", "metadata", "topic", "delete", "swap"],
)
async def test_tampering_breaks_the_chain_where_it_happened(
    store: PostgresEventStore, sql: asyncpg.Connection, tamper: Tamper, broken_at: int
) -> None:
    await fill(store)
    assert await verify(store) == EVENTS
    assert await tamper(sql, store.schema) in ("UPDATE 1", "UPDATE 2", "DELETE 1")

    with pytest.raises(ChainBreak) as caught:
        await verify(store)
    assert caught.value.position == broken_at
    with pytest.raises(ChainBreak) as caught_in_pages:
        await verify(store, page=3)
    assert caught_in_pages.value.position == broken_at


async def test_moving_an_event_to_another_tenant_is_caught(
    store: PostgresEventStore, sql: asyncpg.Connection
) -> None:
    """``read_all(tenant_id=...)`` trusts the ``tenant_id`` column, so the audit must too.

    The hash covers the envelope (which names the tenant) but not the column; an event
    moved to another tenant's feed by UPDATE verifies as untouched.
    """
    await fill(store)
    assert [e.position for e in await store.read_all(tenant_id="t-0")] == [1, 3, 5, 7]
    await update_tenant_column(sql, store.schema)
    assert [e.position for e in await store.read_all(tenant_id="t-0")] == [1, 3, 4, 5, 7]

    with pytest.raises(ChainBreak) as caught:
        await verify(store)
    assert caught.value.position == 4
