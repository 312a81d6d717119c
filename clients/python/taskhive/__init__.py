"""Python client and worker for the taskhive job scheduler.

Blocking flavour here (:class:`Client`, :class:`Worker`); asyncio flavour in :mod:`taskhive.aio`
with the same API. The raw gRPC stubs are in :mod:`taskhive.v1`.
"""

from taskhive._types import (
    DEFAULT_ADDR,
    Cancellation,
    Done,
    Fail,
    Job,
    JobPage,
    JobState,
    Outcome,
    RetryPolicy,
    SchedLater,
    Schedule,
    Status,
    SubmitAck,
    TaskLimits,
    TaskStatus,
)
from taskhive.client import Client
from taskhive.errors import (
    AlreadyExistsError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    JobFailedError,
    NoWorkerError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    StaleLeaseError,
    TaskhiveError,
    UnauthenticatedError,
    UnavailableError,
    WorkersPresentError,
)
from taskhive.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ADDR",
    "AlreadyExistsError",
    "Cancellation",
    "CancelledError",
    "Client",
    "DeadlineExceededError",
    "Done",
    "Fail",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "Job",
    "JobPage",
    "JobFailedError",
    "JobState",
    "NoWorkerError",
    "NotFoundError",
    "Outcome",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "SchedLater",
    "Schedule",
    "StaleLeaseError",
    "Status",
    "SubmitAck",
    "TaskLimits",
    "TaskStatus",
    "TaskhiveError",
    "UnauthenticatedError",
    "UnavailableError",
    "Worker",
    "WorkersPresentError",
]
