"""Group commit: many commands' appends written in one locked transaction.

Every append must take the table lock (see ``BatchWriter.write``), so appends are
serialised anyway; one fsync per batch instead of one per command is what lets
throughput approach the batched-insert ceiling under load.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import asyncpg

from gateways.eventstore import hashchain
from gateways.eventstore.records import (
    AppendRequest,
    AppendResult,
    CommandRecord,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    encode_metadata,
)
from gateways.eventstore.schema import COMMANDS_TABLE, notify_channel

_Pending = tuple[AppendRequest, "asyncio.Future[AppendResult]"]


class _Outcome:
    """What one request in a batch turned out to be."""

    __slots__ = ("error", "positions", "repeat")

    def __init__(self) -> None:
        self.positions: list[int] = []
        self.error: Exception | None = None
        self.repeat = False


class BatchWriter:
    """Writes one batch of appends in one call to ``scloud_append`` (see schema.py).

    Positions and hash links are computed here from the head (last position and its
    hash) this writer last saw. When another process moved the head, the database
    writes nothing and answers with the new head, and the batch is recomputed.
    """

    def __init__(self, schema: str) -> None:
        self._append = (
            f"SELECT status, detail, head_position, head_hash FROM {schema}.scloud_append("
            "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        )
        self._find = f"""
            SELECT command_id, fingerprint, positions, result FROM {schema}.{COMMANDS_TABLE}
            WHERE command_id = ANY($1::text[])
        """
        self._channel = notify_channel(schema)
        self._head_position = -1  # unknown until the first answer
        self._head_hash = hashchain.GENESIS

    async def write(
        self, conn: asyncpg.Connection, batch: Sequence[AppendRequest]
    ) -> list[AppendResult | Exception]:
        """Write what can be written; each request gets its own result or error."""
        outcomes = [_Outcome() for _ in batch]
        for request, outcome in zip(batch, outcomes, strict=True):
            outcome.error = _contiguity_error(request)
        while True:
            live = [(r, o) for r, o in zip(batch, outcomes, strict=True) if not _settled(o)]
            if not live:
                break
            args = self._arguments(live)
            try:
                row = await conn.fetchrow(self._append, *args)
            except asyncpg.PostgresError as error:
                if getattr(error, "sqlstate", None) != "SC409":
                    raise
                lost = {int(p) for p in (getattr(error, "detail", None) or "").split()}
                for request, outcome in live:
                    if lost.intersection(outcome.positions):
                        outcome.error = _conflict(request, outcome, lost)
                continue
            assert row is not None
            status = row["status"]
            self._head_position = row["head_position"]
            self._head_hash = row["head_hash"] or hashchain.GENESIS
            if status == "ok":
                break
            if status == "known":
                known = set(row["detail"])
                for request, outcome in live:
                    if request.command_id in known:
                        outcome.repeat = True
        # Positions were assigned in the last (successful) attempt only.
        records = {}
        repeats = [r.command_id for r, o in zip(batch, outcomes, strict=True) if o.repeat]
        if repeats:
            records = await self.find_commands(conn, [c for c in repeats if c])
        return [self._result(r, o, records) for r, o in zip(batch, outcomes, strict=True)]

    async def find_commands(
        self, conn: asyncpg.Connection, command_ids: Sequence[str]
    ) -> dict[str, CommandRecord]:
        rows = await conn.fetch(self._find, list(command_ids))
        return {
            r["command_id"]: CommandRecord(
                r["command_id"], bytes(r["fingerprint"]), tuple(r["positions"]), r["result"]
            )
            for r in rows
        }

    def _arguments(self, live: Sequence[tuple[AppendRequest, _Outcome]]) -> list[object]:
        ids: list[str] = []
        versions: list[int] = []
        topics: list[str] = []
        states: list[bytes] = []
        positions: list[int] = []
        event_ids: list[str] = []
        tenants: list[str | None] = []
        metadatas: list[bytes] = []
        hashes: list[bytes] = []
        c_ids: list[str] = []
        c_fingerprints: list[bytes] = []
        c_positions: list[str] = []
        c_results: list[bytes] = []
        position = max(self._head_position, 0)
        previous = self._head_hash
        link = hashchain.link
        for request, outcome in live:
            outcome.positions = []
            for event in request.events:
                position += 1
                metadata = encode_metadata(event.metadata)
                previous = link(
                    previous,
                    position=position,
                    originator_id=event.originator_id,
                    originator_version=event.originator_version,
                    topic=event.topic,
                    state=event.state,
                    metadata=metadata,
                    tenant_id=event.metadata.tenant_id,
                )
                ids.append(event.originator_id)
                versions.append(event.originator_version)
                topics.append(event.topic)
                states.append(event.state)
                positions.append(position)
                event_ids.append(event.metadata.event_id)
                tenants.append(event.metadata.tenant_id)
                metadatas.append(metadata)
                hashes.append(previous)
                outcome.positions.append(position)
            if request.command_id:
                c_ids.append(request.command_id)
                c_fingerprints.append(request.fingerprint)
                c_positions.append(",".join(map(str, outcome.positions)))
                c_results.append(request.result)
        return [
            self._head_position,
            ids,
            versions,
            topics,
            states,
            positions,
            event_ids,
            tenants,
            metadatas,
            hashes,
            c_ids,
            c_fingerprints,
            c_positions,
            c_results,
            self._channel,
        ]

    @staticmethod
    def _result(
        request: AppendRequest, outcome: _Outcome, records: dict[str, CommandRecord]
    ) -> AppendResult | Exception:
        if outcome.error is not None:
            return outcome.error
        if outcome.repeat:
            assert request.command_id is not None
            record = records[request.command_id]
            if record.fingerprint != request.fingerprint:
                return IdempotencyKeyReused(
                    f"command id {record.command_id!r} was used for a different command",
                    command_id=record.command_id,
                )
            return AppendResult(record.positions, record.result, replayed=True)
        return AppendResult(tuple(outcome.positions), request.result)


def _settled(outcome: _Outcome) -> bool:
    return outcome.error is not None or outcome.repeat


def _contiguity_error(request: AppendRequest) -> Exception | None:
    """Within one append, each stream's versions must follow one another."""
    last: dict[str, int] = {}
    for event in request.events:
        before = last.get(event.originator_id)
        if before is not None and event.originator_version != before + 1:
            return ConcurrencyConflict(
                f"{event.originator_id}: version {event.originator_version} "
                f"does not follow {before}",
                originator_id=event.originator_id,
            )
        last[event.originator_id] = event.originator_version
    return None


def _conflict(request: AppendRequest, outcome: _Outcome, lost: set[int]) -> ConcurrencyConflict:
    event = next(e for e, p in zip(request.events, outcome.positions, strict=True) if p in lost)
    return ConcurrencyConflict(
        f"{event.originator_id} already has version {event.originator_version}; "
        "reload it and try again",
        originator_id=event.originator_id,
        version=event.originator_version,
    )


class GroupCommitter:
    """Queues appends from any number of tasks and writes them in batches."""

    def __init__(self, pool: asyncpg.Pool, writer: BatchWriter, max_batch: int = 1024) -> None:
        self._pool = pool
        self._writer = writer
        self._max_batch = max_batch
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._writing: list[_Pending] = []

    async def submit(self, request: AppendRequest) -> AppendResult:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="scloud-group-commit")
        future: asyncio.Future[AppendResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((request, future))
        # Shielded: a caller that gives up must not leave the batch half-resolved;
        # the append may still commit, and its command id makes a retry safe.
        return await asyncio.shield(future)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        # A batch cut off mid-write may or may not have committed: its callers hear so, and
        # a retry with the same command id is safe either way.
        unsettled = list(self._writing)
        while not self._queue.empty():
            unsettled.append(self._queue.get_nowait())
        for _, future in unsettled:
            if not future.done():
                future.set_exception(ConnectionError("event store closed"))

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            # Let every task that is ready to append run first: when a batch commits,
            # its callers all wake at once and come straight back with their next append.
            await asyncio.sleep(0)
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._flush(self._defer_duplicates(batch))

    def _defer_duplicates(self, batch: list[_Pending]) -> list[_Pending]:
        # Two requests with one command id in one batch: the later one waits for the
        # next batch, where it is recognised as a repeat of the committed first.
        seen: set[str] = set()
        kept: list[_Pending] = []
        for item in batch:
            command_id = item[0].command_id
            if command_id and command_id in seen:
                self._queue.put_nowait(item)
            else:
                if command_id:
                    seen.add(command_id)
                kept.append(item)
        return kept

    async def _flush(self, batch: list[_Pending]) -> None:
        self._writing = batch
        requests = [request for request, _ in batch]
        results: list[AppendResult | Exception]
        try:
            async with self._pool.acquire() as conn:
                try:
                    results = await self._writer.write(conn, requests)
                except asyncpg.PostgresError:
                    if len(requests) == 1:
                        raise
                    # An unforeseen database error (not a version conflict, which is
                    # handled per request) must not fail innocent neighbours.
                    results = [await self._write_alone(conn, r) for r in requests]
        except Exception as error:  # the connection or the database failed: all hear it
            results = [error] * len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)

    async def _write_alone(
        self, conn: asyncpg.Connection, request: AppendRequest
    ) -> AppendResult | Exception:
        try:
            results = await self._writer.write(conn, [request])
        except asyncpg.PostgresError as error:
            failure: Exception = error
            return failure
        return results[0]
