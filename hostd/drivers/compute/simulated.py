"""A compute driver that keeps domains in memory: for scale tests with thousands of hosts.

It honours the same contract as the libvirt driver (tests/hostd/test_compute_contract.py):
starting an undefined domain fails, undefining a running one stops it first.
"""

from __future__ import annotations

from hostd.drivers.compute.port import ConsoleAddress, DriverError, InstanceSpec, PowerState


class SimulatedCompute:
    def __init__(self, host: str = "sim") -> None:
        self.host = host
        self.specs: dict[str, InstanceSpec] = {}
        self.states: dict[str, PowerState] = {}

    async def define(self, spec: InstanceSpec) -> None:
        # As with libvirt: a new definition of a running guest applies at its next start.
        self.specs[spec.instance_id] = spec
        self.states.setdefault(spec.instance_id, PowerState.STOPPED)

    async def start(self, instance_id: str) -> None:
        self._known(instance_id)
        self.states[instance_id] = PowerState.RUNNING

    async def stop(self, instance_id: str, *, force: bool = False) -> None:
        self._known(instance_id)
        self.states[instance_id] = PowerState.STOPPED

    async def reboot(self, instance_id: str, *, hard: bool = False) -> None:
        self._known(instance_id)
        if self.states[instance_id] != PowerState.RUNNING:
            raise DriverError(f"{instance_id} is not running")

    async def undefine(self, instance_id: str) -> None:
        self.specs.pop(instance_id, None)
        self.states.pop(instance_id, None)

    async def state(self, instance_id: str) -> PowerState:
        return self.states.get(instance_id, PowerState.ABSENT)

    async def observed(self) -> dict[str, PowerState]:
        return dict(self.states)

    async def console(self, instance_id: str) -> ConsoleAddress | None:
        self._known(instance_id)
        if self.states[instance_id] != PowerState.RUNNING:
            return None
        return ConsoleAddress(self.host, 5900 + sorted(self.states).index(instance_id))

    def _known(self, instance_id: str) -> None:
        if instance_id not in self.specs:
            raise DriverError(f"{instance_id} is not defined on this host")
