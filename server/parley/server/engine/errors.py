"""Errors the engine and stores raise; the api layer maps each class to a gRPC code.

Every error carries a stable UPPER_SNAKE `reason` (ErrorInfo.reason on the wire) and a
message that is safe to show a client: never an exception text from a library.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class ParleyError(Exception):
    """Base of every error that is the client's business."""

    reason: str = "ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class NotFound(ParleyError):
    reason = "NOT_FOUND"


class AlreadyExists(ParleyError):
    reason = "ALREADY_EXISTS"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: `field` is a path in the request, as in google.rpc.BadRequest."""

    field: str
    description: str


class InvalidArgument(ParleyError):
    reason = "INVALID_ARGUMENT"

    def __init__(self, violations: Iterable[FieldViolation], *, reason: str | None = None) -> None:
        self.violations = tuple(violations)
        summary = "; ".join(f"{v.field}: {v.description}" for v in self.violations)
        super().__init__(summary or "invalid request", reason=reason)

    @classmethod
    def single(cls, field: str, description: str, *, reason: str | None = None) -> InvalidArgument:
        return cls([FieldViolation(field, description)], reason=reason)


class FailedPrecondition(ParleyError):
    reason = "FAILED_PRECONDITION"


class RunInProgress(FailedPrecondition):
    reason = "RUN_IN_PROGRESS"


class LeaseLost(FailedPrecondition):
    """A run's lease on its dialogue expired or was taken over: it must stop writing."""

    reason = "LEASE_LOST"


class ResourceExhausted(ParleyError):
    reason = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, *, subject: str = "", reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.subject = subject


class Unauthenticated(ParleyError):
    reason = "UNAUTHENTICATED"


class PermissionDenied(ParleyError):
    reason = "PERMISSION_DENIED"


class Unavailable(ParleyError):
    reason = "UNAVAILABLE"


def dialogue_not_found(dialogue_id: str) -> NotFound:
    return NotFound(f"dialogue {dialogue_id!r} not found", reason="DIALOGUE_NOT_FOUND")
