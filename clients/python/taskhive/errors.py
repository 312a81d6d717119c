"""Exceptions raised by the taskhive clients: one class per gRPC status code the server uses."""

from __future__ import annotations

from typing import Optional

import grpc

__all__ = [
    "AlreadyExistsError",
    "CancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "JobFailedError",
    "NoWorkerError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "TaskhiveError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
]


class TaskhiveError(Exception):
    """A call to the taskhive server failed.

    ``code`` is the gRPC status code and ``details`` the server's message
    (e.g. ``"task: must not be empty"``).
    """

    #: The gRPC code this class stands for (``None`` on the base class: any code).
    default_code: Optional[grpc.StatusCode] = None

    def __init__(self, details: str = "", code: Optional[grpc.StatusCode] = None) -> None:
        self.code: grpc.StatusCode = code or self.default_code or grpc.StatusCode.UNKNOWN
        self.details: str = details
        super().__init__(f"{self.code.name}: {details}" if details else self.code.name)


class InvalidArgumentError(TaskhiveError, ValueError):
    """INVALID_ARGUMENT: a field is missing or out of range; the message starts with its name."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(TaskhiveError, LookupError):
    """NOT_FOUND: no such job, worker or task."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(TaskhiveError):
    """ALREADY_EXISTS."""

    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(TaskhiveError):
    """FAILED_PRECONDITION: the operation does not apply now (stale lease, workers present, ...)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class NoWorkerError(FailedPreconditionError):
    """``run_job`` was refused because no worker serves the task."""


class JobFailedError(TaskhiveError):
    """ABORTED: the job ran (``run_job``) and the worker reported a failure."""

    default_code = grpc.StatusCode.ABORTED


class ResourceExhaustedError(TaskhiveError):
    """RESOURCE_EXHAUSTED: a server limit was reached."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceededError(TaskhiveError, TimeoutError):
    """DEADLINE_EXCEEDED: no answer before the call's deadline (a ``run_job``'s job stays)."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnavailableError(TaskhiveError, ConnectionError):
    """UNAVAILABLE: the server cannot be reached, is stopping, or its store failed."""

    default_code = grpc.StatusCode.UNAVAILABLE


class UnauthenticatedError(TaskhiveError, PermissionError):
    """UNAUTHENTICATED: the server runs with ``--auth`` and the token is missing or unknown."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(TaskhiveError, PermissionError):
    """PERMISSION_DENIED: the token's role may not make this call (or a load target is not allowed)."""

    default_code = grpc.StatusCode.PERMISSION_DENIED


class CancelledError(TaskhiveError):
    """CANCELLED: the call was cancelled."""

    default_code = grpc.StatusCode.CANCELLED


_BY_CODE: dict[grpc.StatusCode, type[TaskhiveError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FailedPreconditionError,
        JobFailedError,
        ResourceExhaustedError,
        DeadlineExceededError,
        UnavailableError,
        UnauthenticatedError,
        PermissionDeniedError,
        CancelledError,
    )
    if cls.default_code is not None
}


def from_code_name(name: str, details: str) -> TaskhiveError:
    """The :class:`TaskhiveError` for a gRPC code given by name (``"INVALID_ARGUMENT"``), as a
    SubmitStream ack carries it."""
    code = getattr(grpc.StatusCode, name, grpc.StatusCode.UNKNOWN)
    return _BY_CODE.get(code, TaskhiveError)(details, code)


def from_rpc_error(err: grpc.RpcError, *, run_job: bool = False) -> TaskhiveError:
    """The :class:`TaskhiveError` for a failed gRPC call (``grpc.RpcError`` or ``grpc.aio.AioRpcError``).

    With ``run_job`` set, FAILED_PRECONDITION becomes :class:`NoWorkerError`.
    """
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details = (details_fn() if callable(details_fn) else None) or ""
    if run_job and code == grpc.StatusCode.FAILED_PRECONDITION:
        cls: type[TaskhiveError] = NoWorkerError
    else:
        cls = _BY_CODE.get(code, TaskhiveError)
    return cls(details, code)
