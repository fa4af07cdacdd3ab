"""A compute driver that keeps domains in memory: for scale tests with thousands of hosts.

It honours the same contract as the libvirt driver (tests/hostd/test_compute_contract.py):
starting an undefined domain fails, undefining a running one stops it first.
"""

from __future__ import annotations

from hostd.drivers.compute.port import (
    ConsoleAddress,
    DriverError,
    InstanceSpec,
    MigrationTarget,
    PowerState,
    check_growth,
)


class SimulatedCompute:
    def __init__(self, host: str = "sim", peers: dict[str, SimulatedCompute] | None = None) -> None:
        """``peers`` maps host ids to the simulated hypervisors a guest can migrate to
        (shared by a fleet; it may hold this one too)."""
        self.host = host
        self.peers = peers if peers is not None else {}
        self.specs: dict[str, InstanceSpec] = {}
        self.states: dict[str, PowerState] = {}
        self.passwords: dict[str, dict[str, str]] = {}
        """instance id → user → the crypt(3) hash the guest was given."""
        self.sizes: dict[str, tuple[int, int]] = {}
        """Running guests' (vcpus, memory_mb): set at start, grown by hot-plug."""
        self.refuses_hot_plug = False
        """A hypervisor (or guests) that will not plug anything in live, for tests."""

    async def define(self, spec: InstanceSpec) -> None:
        # As with libvirt: a new definition of a running guest applies at its next start.
        self.specs[spec.instance_id] = spec
        self.states.setdefault(spec.instance_id, PowerState.STOPPED)

    async def start(self, instance_id: str) -> None:
        self._known(instance_id)
        if self.states[instance_id] != PowerState.RUNNING:
            spec = self.specs[instance_id]
            self.sizes[instance_id] = (spec.vcpus, spec.memory_mb)
        self.states[instance_id] = PowerState.RUNNING

    async def stop(self, instance_id: str, *, force: bool = False) -> None:
        self._known(instance_id)
        self.states[instance_id] = PowerState.STOPPED
        self.sizes.pop(instance_id, None)

    async def reboot(self, instance_id: str, *, hard: bool = False) -> None:
        self._known(instance_id)
        if self.states[instance_id] != PowerState.RUNNING:
            raise DriverError(f"{instance_id} is not running")

    async def undefine(self, instance_id: str) -> None:
        self.specs.pop(instance_id, None)
        self.states.pop(instance_id, None)
        self.passwords.pop(instance_id, None)
        self.sizes.pop(instance_id, None)

    async def state(self, instance_id: str) -> PowerState:
        return self.states.get(instance_id, PowerState.ABSENT)

    async def observed(self) -> dict[str, PowerState]:
        return dict(self.states)

    async def console(self, instance_id: str) -> ConsoleAddress | None:
        self._known(instance_id)
        if self.states[instance_id] != PowerState.RUNNING:
            return None
        return ConsoleAddress(self.host, 5900 + sorted(self.states).index(instance_id))

    async def migrate(self, instance_id: str, target: MigrationTarget, *, live: bool) -> None:
        peer = self.peers.get(target.host_id)
        if instance_id not in self.specs and peer is not None and instance_id in peer.specs:
            return  # moved already: a repeat of the same migration
        self._known(instance_id)
        state = self.states[instance_id]
        if live and state != PowerState.RUNNING:
            raise DriverError(f"{instance_id} is {state}; live migration needs it running")
        if not live and state != PowerState.STOPPED:
            raise DriverError(f"{instance_id} is {state}; cold migration needs it stopped")
        if peer is None or peer is self:
            raise DriverError(f"cannot reach hypervisor {target.hostname} ({target.host_id})")
        peer.specs[instance_id] = self.specs.pop(instance_id)
        peer.states[instance_id] = self.states.pop(instance_id)
        if instance_id in self.passwords:
            peer.passwords[instance_id] = self.passwords.pop(instance_id)
        if instance_id in self.sizes:
            peer.sizes[instance_id] = self.sizes.pop(instance_id)

    async def set_password(self, instance_id: str, user: str, password_hash: str) -> None:
        self._known(instance_id)
        if self.states[instance_id] != PowerState.RUNNING:
            raise DriverError(f"{instance_id} is not running: its guest agent cannot answer")
        if not password_hash.startswith("$6$"):
            raise DriverError("the password must come as a SHA-512 crypt hash")
        self.passwords.setdefault(instance_id, {})[user] = password_hash

    async def resize(self, instance_id: str, *, vcpus: int, memory_mb: int) -> None:
        have_vcpus, have_memory = await self.size(instance_id)
        if (vcpus, memory_mb) == (have_vcpus, have_memory):
            return
        spec = self.specs[instance_id]
        check_growth(
            instance_id,
            (have_vcpus, have_memory),
            (vcpus, memory_mb),
            (max(spec.vcpus, spec.max_vcpus or 0), max(spec.memory_mb, spec.max_memory_mb or 0)),
        )
        if self.refuses_hot_plug:
            raise DriverError(f"{instance_id}: the guest did not take the hot-plugged devices")
        self.sizes[instance_id] = (vcpus, memory_mb)

    async def size(self, instance_id: str) -> tuple[int, int]:
        self._known(instance_id)
        if self.states[instance_id] != PowerState.RUNNING:
            raise DriverError(f"{instance_id} is not running: nothing is plugged in live")
        return self.sizes[instance_id]

    def _known(self, instance_id: str) -> None:
        if instance_id not in self.specs:
            raise DriverError(f"{instance_id} is not defined on this host")
