"""A host's command runner: decode, apply in order per instance, publish the outcome, then ack.

The ack comes last on purpose. A runner killed anywhere before it leaves the command
unacked, JetStream redelivers it, and applying it again is harmless; the outcome it
publishes again carries the same step id and is dropped as a duplicate.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import msgspec
from nats.aio.msg import Msg

from domain import clock
from gateways.bus import hostwire
from gateways.bus.hostwire import Action, HostCommand, HostOutcome
from gateways.bus.hostwire import PowerState as WireState
from hostd.apply import Host, apply, observe, outcome
from hostd.lanes import Lanes
from hostd.outcomes import OutcomeSink

log = logging.getLogger(__name__)

_ACTIONS = frozenset(action.value for action in Action)
_NOT_TWICE = frozenset({Action.REINSTALL})
"""Commands whose effect a repeat would redo rather than find done."""


class _Envelope(msgspec.Struct):
    """What can still be read from a command that does not decode."""

    step_id: str
    instance_id: str = ""
    action: str = ""


@dataclass(slots=True)
class _Work:
    msg: Msg
    done: asyncio.Future[None]
    command: HostCommand | None
    problem: str | None = None


class HostRunner:
    def __init__(
        self,
        host: Host,
        outcomes: OutcomeSink,
        *,
        concurrency: int = 8,
        apply_timeout: float = 600.0,
    ) -> None:
        self.host = host
        self.outcomes = outcomes
        self.apply_timeout = apply_timeout
        self.lanes: Lanes[_Work] = Lanes(self._handle, limit=concurrency)
        self.applied: dict[str, int] = {}
        """Instance id → stream sequence of the last command applied to it."""
        self.handled = 0

    def accept(self, msg: Msg) -> asyncio.Future[None]:
        """Queue a delivered command; the future is done once it is acked, termed or naked."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            command: HostCommand | None = hostwire.decode_command(msg.data)
            problem = None
        except msgspec.DecodeError as error:  # ValidationError is a DecodeError
            command, problem = None, str(error)
        if command is not None and command.host_id != self.host.host_id:
            problem = f"command for host {command.host_id} delivered to {self.host.host_id}"
        key = command.instance_id if command else _envelope(msg.data).instance_id
        self.lanes.submit(key, _Work(msg, done, command, problem))
        return done

    async def _handle(self, work: _Work) -> None:
        try:
            if work.command is None or work.problem is not None:
                await self._reject(work)
            else:
                await self._execute(work.msg, work.command)
        except Exception:
            # A bug here must not stop the host: the command stays unacked and comes back.
            log.exception("hostd %s: command left unacked", self.host.host_id)
        finally:
            self.handled += 1
            if not work.done.done():
                work.done.set_result(None)

    async def _execute(self, msg: Msg, command: HostCommand) -> None:
        sequence = msg.metadata.sequence.stream
        last = self.applied.get(command.instance_id)
        if last is not None and sequence < last:
            # A redelivery overtaken by a later command for the same instance (the earlier
            # one's ack was lost, or it waited out an ack wait across a restart): applying it
            # now would undo the later one.
            result = outcome(
                self.host,
                command,
                await observe(self.host, command.instance_id),
                f"superseded by a later command for this instance (stream sequence {last})",
            )
        elif command.expires_at is not None and clock.now() > command.expires_at:
            # The platform gave this step up meanwhile (its deadline passed while this host
            # was away): applying it now would act behind the platform's back.
            result = outcome(
                self.host,
                command,
                await observe(self.host, command.instance_id),
                f"expired: the platform gave this step up at {command.expires_at.isoformat()}",
            )
        elif sequence == last and command.action in _NOT_TWICE:
            # The same message again (its ack was lost): its outcome is already stored, and
            # rebuilding the disk a second time would wipe what the guest wrote since.
            result = outcome(
                self.host, command, await observe(self.host, command.instance_id), None
            )
        else:
            self.applied[command.instance_id] = sequence
            result = await self._apply(command)
        await self._publish(result)
        await _ack(msg)

    async def _apply(self, command: HostCommand) -> HostOutcome:
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # (a kill) that arrives as the apply finishes.
            async with asyncio.timeout(self.apply_timeout):
                return await apply(self.host, command)
        except TimeoutError:
            error = f"{command.action} did not finish within {self.apply_timeout:g}s"
        except Exception as failure:
            log.exception("hostd %s: %s %s", self.host.host_id, command.action, command.step_id)
            error = f"{type(failure).__name__}: {failure}"
        return outcome(self.host, command, await observe(self.host, command.instance_id), error)

    async def _reject(self, work: _Work) -> None:
        """A command that cannot be applied: an error outcome when it names a step, then term."""
        envelope = _envelope(work.msg.data)
        problem = work.problem or "undecodable"
        if envelope.step_id and envelope.action in _ACTIONS:
            state = (
                await observe(self.host, envelope.instance_id)
                if envelope.instance_id
                else WireState.ABSENT
            )
            await self._publish(
                HostOutcome(
                    step_id=envelope.step_id,
                    host_id=self.host.host_id,
                    instance_id=envelope.instance_id,
                    action=Action(envelope.action),
                    ok=False,
                    state=state,
                    error=f"malformed command: {problem}",
                )
            )
        else:
            # HostOutcome needs a known action: without one there is nothing to answer with.
            log.error("hostd %s: dropping malformed command: %s", self.host.host_id, problem)
        await work.msg.term()

    async def _publish(self, result: HostOutcome) -> None:
        """Publish until the stream acknowledges: the command must not be acked before."""
        delay = 0.1
        while True:
            try:
                await self.outcomes.publish(result)
                return
            except Exception as error:
                log.warning(
                    "hostd %s: outcome %s not stored (%s); retrying in %.1fs",
                    self.host.host_id,
                    result.step_id,
                    error or type(error).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def drain(self) -> None:
        """For a clean stop: hand back what has not started (in order), finish the rest."""
        waiting = self.lanes.take_waiting()
        waiting.sort(key=lambda work: work.msg.metadata.sequence.stream)
        for work in waiting:
            try:
                await work.msg.nak()
            finally:
                work.done.set_result(None)
        await self.lanes.join()


def _envelope(data: bytes) -> _Envelope:
    try:
        return msgspec.json.decode(data, type=_Envelope)
    except msgspec.DecodeError:
        return _Envelope(step_id="")


async def _ack(msg: Msg) -> None:
    try:
        await msg.ack_sync(timeout=5.0)
    except Exception as error:
        # The command comes back after its ack wait; applying it again is harmless and its
        # outcome is a duplicate.
        log.warning("command ack not confirmed (%s); it will be redelivered", error)
