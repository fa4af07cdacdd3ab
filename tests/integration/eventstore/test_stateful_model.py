"""Hypothesis drives the store and an in-memory model with the same commands; they must agree.

Each example gets a fresh schema and two stores on it (two pools, two group committers), so
racing writers meet both inside one batch and across transactions. The store runs on an
event loop of the machine's own, since Hypothesis calls rules synchronously.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from gateways.eventstore.hashchain import ChainVerifier
from gateways.eventstore.postgres import PostgresEventStore
from gateways.eventstore.records import (
    AppendResult,
    ConcurrencyConflict,
    IdempotencyKeyReused,
    NewEvent,
)
from tests.integration.eventstore.builders import drop_schema, event, new_schema_name, request

T = TypeVar("T")


class Command:
    """What the model remembers of a command id."""

    def __init__(self, fingerprint: bytes, positions: tuple[int, ...], result: bytes) -> None:
        self.fingerprint = fingerprint
        self.positions = positions
        self.result = result


class EventStoreMachine(RuleBasedStateMachine):
    database_url: ClassVar[str] = ""

    def __init__(self) -> None:
        super().__init__()
        self.runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self.schema = new_schema_name()
        self.stores = [
            self.run(PostgresEventStore.open(self.database_url, self.schema, min_size=1))
            for _ in range(2)
        ]
        self.log: list[tuple[int, str, int, bytes]] = []
        self.versions: dict[str, int] = {}
        self.commands: dict[str, Command] = {}
        self.names = itertools.count(1)

    def teardown(self) -> None:
        try:
            for store in self.stores:
                self.run(store.close())
            self.run(drop_schema(self.database_url, self.schema))
        finally:
            self.runner.close()

    # -- helpers -----------------------------------------------------------------------

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def fresh(self, kind: str) -> str:
        return f"{kind}-{next(self.names)}"

    def new_event(self, originator_id: str, version: int) -> NewEvent:
        return event(originator_id, version, state=f'"{self.fresh("state")}"'.encode())

    def commit(self, result: AppendResult, events: list[NewEvent]) -> None:
        """Apply an acknowledged append to the model, checking its positions on the way."""
        assert not result.replayed
        assert len(result.positions) == len(events)
        last = self.log[-1][0] if self.log else 0
        assert list(result.positions) == sorted(result.positions)
        assert result.positions[0] > last
        for position, e in zip(result.positions, events, strict=True):
            self.log.append((position, e.originator_id, e.originator_version, e.state))
            assert self.versions.get(e.originator_id, 0) + 1 == e.originator_version
            self.versions[e.originator_id] = e.originator_version

    def pick_stream(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.versions)), label="stream")

    def command_fields(self, with_command: bool) -> dict[str, Any]:
        if not with_command:
            return {}
        command_id = self.fresh("cmd")
        return {
            "command_id": command_id,
            "fingerprint": command_id.encode(),
            "result": f"answer to {command_id}".encode(),
        }

    def remember(self, fields: dict[str, Any], result: AppendResult) -> None:
        if fields:
            self.commands[fields["command_id"]] = Command(
                fields["fingerprint"], result.positions, fields["result"]
            )

    # -- rules -------------------------------------------------------------------------

    @rule(count=st.integers(1, 3), with_command=st.booleans(), which=st.integers(0, 1))
    def start_stream(self, count: int, with_command: bool, which: int) -> None:
        originator_id = self.fresh("s")
        events = [self.new_event(originator_id, v) for v in range(1, count + 1)]
        fields = self.command_fields(with_command)
        result = self.run(self.stores[which].append(request(*events, **fields)))
        self.commit(result, events)
        self.remember(fields, result)

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), count=st.integers(1, 3), with_command=st.booleans())
    def extend_stream(self, data: st.DataObject, count: int, with_command: bool) -> None:
        originator_id = self.pick_stream(data)
        current = self.versions[originator_id]
        events = [self.new_event(originator_id, current + i) for i in range(1, count + 1)]
        fields = self.command_fields(with_command)
        store = self.stores[data.draw(st.integers(0, 1), label="store")]
        result = self.run(store.append(request(*events, **fields)))
        self.commit(result, events)
        self.remember(fields, result)

    @precondition(lambda self: self.versions)
    @rule(data=st.data(), writers=st.integers(2, 5))
    def race_writers_on_one_version(self, data: st.DataObject, writers: int) -> None:
        originator_id = self.pick_stream(data)
        version = self.versions[originator_id] + 1
        stores = data.draw(st.lists(st.integers(0, 1), min_size=writers, max_size=writers))
        candidates = [self.new_event(originator_id, version) for _ in range(writers)]

        async def race() -> list[AppendResult | BaseException]:
            return await asyncio.gather(
                *(
                    self.stores[s].append(request(e))
                    for s, e in zip(stores, candidates, strict=True)
                ),
                return_exceptions=True,
            )

        outcomes = self.run(race())
        winners = [i for i, o in enumerate(outcomes) if isinstance(o, AppendResult)]
        assert len(winners) == 1, outcomes
        assert all(
            isinstance(o, ConcurrencyConflict) for i, o in enumerate(outcomes) if i != winners[0]
        ), outcomes
        won = outcomes[winners[0]]
        assert isinstance(won, AppendResult)
        self.commit(won, [candidates[winners[0]]])

    @precondition(lambda self: self.versions)
    @rule(data=st.data())
    def append_a_stale_version(self, data: st.DataObject) -> None:
        originator_id = self.pick_stream(data)
        stale = data.draw(st.integers(1, self.versions[originator_id]), label="stale version")
        # The innocent event in the same request must not be written either.
        innocent = self.new_event(self.fresh("s"), 1)
        try:
            self.run(self.stores[0].append(request(innocent, self.new_event(originator_id, stale))))
        except ConcurrencyConflict:
            pass
        else:
            raise AssertionError("a stale version was accepted")

    @precondition(lambda self: self.commands)
    @rule(data=st.data())
    def repeat_a_command(self, data: st.DataObject) -> None:
        command_id = data.draw(st.sampled_from(sorted(self.commands)), label="command")
        known = self.commands[command_id]
        # A repeat carries the same body; new events here prove that nothing is written.
        repeat = request(
            self.new_event(self.fresh("s"), 1),
            command_id=command_id,
            fingerprint=known.fingerprint,
            result=b"a different answer",
        )
        store = self.stores[data.draw(st.integers(0, 1), label="store")]
        result = self.run(store.append(repeat))
        assert result == AppendResult(known.positions, known.result, replayed=True)

    @precondition(lambda self: self.commands)
    @rule(data=st.data())
    def reuse_a_key_for_another_command(self, data: st.DataObject) -> None:
        command_id = data.draw(st.sampled_from(sorted(self.commands)), label="command")
        reuse = request(
            self.new_event(self.fresh("s"), 1),
            command_id=command_id,
            fingerprint=b"another body",
        )
        try:
            self.run(self.stores[1].append(reuse))
        except IdempotencyKeyReused:
            pass
        else:
            raise AssertionError("a reused key with another body was accepted")

    @rule(copies=st.integers(2, 4))
    def submit_one_command_concurrently(self, copies: int) -> None:
        originator_id = self.fresh("s")
        fields = self.command_fields(True)
        events = [self.new_event(originator_id, 1)]

        async def submit() -> list[AppendResult]:
            return await asyncio.gather(
                *(self.stores[n % 2].append(request(*events, **fields)) for n in range(copies))
            )

        outcomes = self.run(submit())
        firsts = [o for o in outcomes if not o.replayed]
        assert len(firsts) == 1, outcomes
        assert {o.positions for o in outcomes} == {firsts[0].positions}
        self.commit(firsts[0], events)
        self.remember(fields, firsts[0])

    # -- invariants --------------------------------------------------------------------

    @invariant()
    def the_log_matches(self) -> None:
        stored = self.run(self.stores[1].read_all(limit=10_000))
        got = [(e.position, e.originator_id, e.originator_version, e.state) for e in stored]
        assert got == sorted(self.log)
        verifier = ChainVerifier()
        verifier.feed(stored)

    @invariant()
    def every_stream_matches(self) -> None:
        for originator_id, version in self.versions.items():
            stored = self.run(self.stores[0].read_stream(originator_id))
            assert [e.originator_version for e in stored] == list(range(1, version + 1))
            # Followers of positions must meet a stream's versions in order.
            assert all(a.position < b.position for a, b in itertools.pairwise(stored))
            expected = [entry[3] for entry in sorted(self.log) if entry[1] == originator_id]
            assert [e.state for e in stored] == expected

    @invariant()
    def the_last_position_matches(self) -> None:
        expected = max((entry[0] for entry in self.log), default=0)
        assert self.run(self.stores[0].last_position()) == expected

    @invariant()
    def every_command_is_recorded(self) -> None:
        for command_id, known in self.commands.items():
            record = self.run(self.stores[0].find_command(command_id))
            assert record is not None
            assert (record.fingerprint, record.positions, record.result) == (
                known.fingerprint,
                known.positions,
                known.result,
            )


def test_the_store_behaves_like_the_model(database_url: str) -> None:
    EventStoreMachine.database_url = database_url
    run_state_machine_as_test(
        EventStoreMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
