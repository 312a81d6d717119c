"""Exceptions raised by the taskhive clients: one class per gRPC status code the server uses, and
a subclass per machine reason callers branch on (:class:`NoWorkerError`, :class:`StaleLeaseError`,
:class:`WorkersPresentError`).

The class is chosen from the server's reason (a ``google.rpc.ErrorInfo`` in the call's
``grpc-status-details-bin`` trailer, domain ``taskhive``), else from the status code; never from
the message, which is for people and may be reworded.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

__all__ = [
    "AlreadyExistsError",
    "CancelledError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "JobFailedError",
    "NoWorkerError",
    "NotFoundError",
    "REASON_DOMAIN",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "StaleLeaseError",
    "TaskhiveError",
    "UnauthenticatedError",
    "UnavailableError",
    "WorkersPresentError",
    "from_rpc_error",
]


class TaskhiveError(Exception):
    """A call to the taskhive server failed.

    ``code`` is the gRPC status code, ``details`` the server's message
    (e.g. ``"task: must not be empty"``), ``reason`` the server's machine reason
    (``"NO_WORKER"``, ``"STALE_LEASE"``, ...; the code's name when the server gave none) and
    ``metadata`` the data that came with it (``task``, ``lease``, ``field``, ...).
    """

    #: The gRPC code this class stands for (``None`` on the base class: any code).
    default_code: Optional[grpc.StatusCode] = None
    #: The reason this class stands for (``None``: any reason of its code).
    default_reason: Optional[str] = None

    def __init__(
        self,
        details: str = "",
        code: Optional[grpc.StatusCode] = None,
        reason: Optional[str] = None,
        metadata: Optional[Dict[str, str]] = None,
    ) -> None:
        self.code: grpc.StatusCode = code or self.default_code or grpc.StatusCode.UNKNOWN
        self.details: str = details
        self.reason: str = reason or self.default_reason or self.code.name
        self.metadata: Dict[str, str] = dict(metadata or {})
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
    """NO_WORKER: ``run_job`` was refused because no worker serves the task (``metadata["task"]``)."""

    default_reason = "NO_WORKER"


class StaleLeaseError(FailedPreconditionError):
    """STALE_LEASE: the lease a result named is not current (it expired, was reassigned or was
    already reported; its job was removed; or another cluster node claimed the job).
    ``metadata["cause"]`` says which."""

    default_reason = "STALE_LEASE"


class WorkersPresentError(FailedPreconditionError):
    """WORKERS_PRESENT: ``drop`` was refused because workers serve the task (``metadata["task"]``)."""

    default_reason = "WORKERS_PRESENT"


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


_BY_REASON: dict[str, type[TaskhiveError]] = {
    cls.default_reason: cls
    for cls in (NoWorkerError, StaleLeaseError, WorkersPresentError)
    if cls.default_reason is not None
}

#: The ``google.rpc.ErrorInfo`` domain of the server's reasons.
REASON_DOMAIN = "taskhive"


def _make(code: grpc.StatusCode, details: str, reason: str, metadata: Dict[str, str]) -> TaskhiveError:
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, TaskhiveError)
    return cls(details, code, reason or None, metadata)


def from_code_name(name: str, details: str, reason: str = "") -> TaskhiveError:
    """The :class:`TaskhiveError` for a gRPC code given by name (``"INVALID_ARGUMENT"``) and the
    server's reason, as a SubmitStream ack carries them."""
    code = getattr(grpc.StatusCode, name, grpc.StatusCode.UNKNOWN)
    return _make(code, details, reason, {})


def _error_info(err: Any) -> Tuple[str, Dict[str, str]]:
    """The reason and metadata of the ``google.rpc.ErrorInfo`` in a failed call's status details."""
    try:
        status = rpc_status.from_call(err)
    except (ValueError, AttributeError, TypeError):
        return "", {}
    if status is None:
        return "", {}
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if info.domain == REASON_DOMAIN:
                return info.reason, dict(info.metadata)
    return "", {}


def from_rpc_error(err: grpc.RpcError, *, run_job: bool = False) -> TaskhiveError:
    """The :class:`TaskhiveError` for a failed gRPC call (``grpc.RpcError`` or ``grpc.aio.AioRpcError``).

    The class follows the server's reason (``NO_WORKER`` → :class:`NoWorkerError`, ...), else the
    status code. ``run_job`` is ignored (kept for callers of earlier versions).
    """
    del run_job
    code_fn = getattr(err, "code", None)
    details_fn = getattr(err, "details", None)
    code = code_fn() if callable(code_fn) else grpc.StatusCode.UNKNOWN
    details = (details_fn() if callable(details_fn) else None) or ""
    reason, metadata = _error_info(err)
    return _make(code, details, reason, metadata)
