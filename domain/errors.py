"""Typed domain errors; the API maps each ``code`` to a problem+json response once."""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """A business rule refused a command. ``code`` is stable across releases."""

    code: ClassVar[str] = "domain_error"
    status: ClassVar[int] = 400

    def __init__(self, detail: str, **context: object) -> None:
        super().__init__(detail)
        self.detail = detail
        self.context = context


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    """The aggregate changed since the caller read it."""

    code = "conflict"
    status = 409


class InvalidState(DomainError):
    """The command does not apply in the aggregate's current state."""

    code = "invalid_state"
    status = 409


class ValidationFailed(DomainError):
    code = "validation_failed"
    status = 422


class QuotaExceeded(DomainError):
    code = "quota_exceeded"
    status = 403


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
