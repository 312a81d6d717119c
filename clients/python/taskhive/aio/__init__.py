"""The asyncio flavour of the taskhive client and worker (``grpc.aio``).

The same API as :mod:`taskhive`, with coroutines: ``await client.submit(...)``,
``await worker.run()``, ``await worker.stop()``. Worker handlers may be ``async def``
(awaited on the loop) or plain functions (run in a thread pool of ``capacity`` threads).
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
from taskhive.aio.client import Client
from taskhive.aio.worker import Worker
from taskhive.errors import (
    AlreadyExistsError,
    CancelledError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    JobFailedError,
    NoWorkerError,
    NotFoundError,
    ResourceExhaustedError,
    StaleLeaseError,
    TaskhiveError,
    UnavailableError,
    WorkersPresentError,
)

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
    "UnavailableError",
    "Worker",
    "WorkersPresentError",
]
