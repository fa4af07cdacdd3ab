"""An operation: one command's progress and outcome, what a 202 answer points at.

Quick commands are born finished (in the same append as their effects); long ones
(boots, migrations) start ``running`` with a deadline and end by an outcome event or a
timeout. The audit log is built from these.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from domain import clock
from domain.aggregate import Aggregate
from domain.errors import InvalidState

RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
DENIED = "denied"
TERMINAL = frozenset({SUCCEEDED, FAILED, DENIED})


class Operation(Aggregate):
    id_prefix = "op"

    def __init__(
        self,
        action: str,
        resource_id: str | None,
        tenant_id: str | None,
        actor_id: str,
        request_id: str | None,
        source: str | None,
        status: str,
        error_code: str | None = None,
        error_detail: str | None = None,
        deadline: datetime | None = None,
    ) -> None:
        self.action = action
        self.resource_id = resource_id
        self.tenant_id = tenant_id
        self.actor_id = actor_id
        self.request_id = request_id
        self.source = source
        self.status = status
        self.error_code = error_code
        self.error_detail = error_detail
        self.deadline = deadline
        # The creation time, not "now": __init__ runs again whenever the aggregate is replayed.
        self.finished_at: datetime | None = None if status == RUNNING else self.created_on

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.action,
            "resource_id": self.resource_id,
            "tenant_id": self.tenant_id,
            "status": self.status,
            "error": None
            if self.error_code is None
            else {"code": self.error_code, "detail": self.error_detail},
            "created_at": self.created_on.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "deadline": self.deadline.isoformat() if self.deadline else None,
        }

    def succeed(self) -> None:
        self._require_running()
        self._succeeded(clock.now())

    @event("Succeeded")
    def _succeeded(self, at: datetime) -> None:
        self.status = SUCCEEDED
        self.finished_at = at

    def fail(self, code: str, detail: str) -> None:
        self._require_running()
        self._failed(code, detail, clock.now())

    @event("Failed")
    def _failed(self, code: str, detail: str, at: datetime) -> None:
        self.status = FAILED
        self.error_code = code
        self.error_detail = detail
        self.finished_at = at

    def _require_running(self) -> None:
        if self.done:
            raise InvalidState(f"operation already {self.status}", operation_id=self.id)
