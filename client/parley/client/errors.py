"""Readable errors from Parley's rich gRPC statuses.

The server puts the useful part of an error in ``google.rpc.Status`` details (an
``ErrorInfo`` with a stable reason, a ``BadRequest`` listing every bad field), which a
plain ``grpc.RpcError`` only exposes as bytes in its trailing metadata. The clients
raise :class:`ParleyRpcError`, which has those details already decoded, so callers can
branch on ``error.reason`` instead of parsing messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = ["ErrorDescription", "FieldViolation", "ParleyRpcError", "describe_error"]


@dataclass(frozen=True)
class FieldViolation:
    """One bad field of a request, as the server reported it in a ``BadRequest``."""

    field: str
    description: str

    def __str__(self) -> str:
        return f"{self.field}: {self.description}" if self.field else self.description


@dataclass(frozen=True)
class ErrorDescription:
    """Everything a caller may want from a failed call, decoded once."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()

    @property
    def code_name(self) -> str:
        """The code as written in the gRPC spec, for example ``NOT_FOUND``."""
        return self.code.name

    def __str__(self) -> str:
        text = f"{self.code_name}: {self.message}" if self.message else self.code_name
        if self.reason:
            text += f" [{self.reason}]"
        for violation in self.field_violations:
            text += f"\n  - {violation}"
        return text


def describe_error(error: grpc.RpcError) -> ErrorDescription:
    """Decode the code, message and rich status details of a failed call.

    Works for errors of both the blocking and the asyncio stubs. A status without
    details (for example UNAVAILABLE raised by the channel itself, before any server
    answered) still yields its code and message, with an empty ``reason``.
    """
    if isinstance(error, ParleyRpcError):
        return error.description
    code = error.code()
    message = error.details() or ""
    try:
        # Every error a stub raises is also its grpc.Call (or, for asyncio, quacks like
        # one with the same synchronous accessors), which is all from_call reads.
        status = rpc_status.from_call(cast(grpc.Call, error))
    except ValueError:
        # The details disagree with the call's own code or message: trust the call.
        status = None
    if status is None:
        return ErrorDescription(code=code, message=message)

    reason = domain = ""
    metadata: dict[str, str] = {}
    violations: list[FieldViolation] = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(info):
            reason, domain, metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Unpack(bad_request):
            violations.extend(
                FieldViolation(field=v.field, description=v.description)
                for v in bad_request.field_violations
            )
    return ErrorDescription(
        code=code,
        message=message,
        reason=reason,
        domain=domain,
        metadata=metadata,
        field_violations=tuple(violations),
    )


class ParleyRpcError(grpc.RpcError):
    """A failed Parley call with its status details decoded.

    It subclasses ``grpc.RpcError`` (and keeps the original as ``__cause__``) so code
    written against the raw stubs, ``except grpc.RpcError``, keeps working.
    """

    def __init__(self, description: ErrorDescription) -> None:
        super().__init__(str(description))
        self.description = description

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ParleyRpcError:
        """Wrap a raw stub error; call as ``raise ParleyRpcError.from_rpc_error(e) from e``."""
        return cls(describe_error(error))

    @property
    def reason(self) -> str:
        """The server's stable UPPER_SNAKE reason, or ``""`` when it sent none."""
        return self.description.reason

    @property
    def message(self) -> str:
        """The status message, safe to show to people."""
        return self.description.message

    @property
    def field_violations(self) -> tuple[FieldViolation, ...]:
        """The bad fields of an INVALID_ARGUMENT, in the server's order."""
        return self.description.field_violations

    def code(self) -> grpc.StatusCode:
        """The status code, like ``grpc.RpcError.code()``."""
        return self.description.code

    def details(self) -> str:
        """The status message, like ``grpc.RpcError.details()``."""
        return self.description.message

    def __str__(self) -> str:
        return str(self.description)
