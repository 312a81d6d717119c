"""Pieces shared by the blocking and the asyncio workers."""

from __future__ import annotations

import os
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Optional

import grpc

from taskhive._types import Fail, Job, Outcome, error_text, to_outcome
from taskhive.v1 import scheduler_pb2 as pb

#: gRPC codes on which a worker gives up instead of reconnecting: the request itself is wrong.
FATAL_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)

#: Channel options of worker channels: HTTP/2 keepalive pings notice a dead peer on an idle stream.
WORKER_CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.max_pings_without_data", 0),
]


def default_worker_name() -> str:
    """``python@HOST:PID``, shown in the server's logs."""
    return f"python@{socket.gethostname()}:{os.getpid()}"


def hello(tasks: list[str], capacity: int, name: str) -> pb.WorkerMessage:
    """The first message of a Work stream."""
    return pb.WorkerMessage(hello=pb.WorkerHello(tasks=tasks, capacity=capacity, name=name))


def result(lease_id: int, outcome: Outcome) -> pb.WorkerMessage:
    """A job's outcome on a Work stream."""
    return pb.WorkerMessage(result=pb.WorkerResult(lease_id=lease_id, outcome=outcome.to_proto()))


def settle(job: Job, value: object, exc: Optional[BaseException]) -> tuple[Outcome, pb.WorkerMessage]:
    """The outcome of a handler call (its return value, or the exception it raised) and the
    result message reporting it. Never raises: an outcome that cannot be encoded (say
    ``Fail(error=42)``) is reported as a failure saying so."""
    try:
        outcome = Fail(error_text(exc)) if exc is not None else to_outcome(value)
        return outcome, result(job.lease_id, outcome)
    except Exception as e:  # noqa: BLE001
        outcome = Fail(f"invalid outcome from the handler: {error_text(e)}")
        return outcome, result(job.lease_id, outcome)


def release(lease_id: int, reason: str) -> tuple[Outcome, pb.WorkerMessage]:
    """What a worker reports for a job the server cancelled, once its handler is over: not the
    handler's outcome but a report the server refuses (the lease no longer counts), which
    frees this worker's slot on the server."""
    outcome = Fail(f"cancelled: {reason}")
    return outcome, result(lease_id, outcome)


def heartbeat(lease_ids: list[int]) -> pb.WorkerMessage:
    """Extends the given leases."""
    return pb.WorkerMessage(heartbeat=pb.HeartbeatRequest(lease_ids=lease_ids))


@dataclass
class Lease:
    """A job handed to this worker on one stream, until its outcome is acknowledged."""

    job: Job
    #: When the next heartbeat for it is due (time.monotonic()).
    next_heartbeat: float
    started: bool = False
    #: The outcome sent, once the handler finished.
    outcome: Optional[Outcome] = None
    #: The server said it no longer holds the lease (heartbeat answer).
    lost: bool = False
    #: The server cancelled the job: its lease no longer counts (its report is refused).
    revoked: bool = False
    #: The handler was called (in the asyncio worker a started job may first wait for a slot).
    invoked: bool = False

    @classmethod
    def of(cls, job: Job) -> "Lease":
        """A lease received now."""
        return cls(job=job, next_heartbeat=time.monotonic() + heartbeat_interval(job))

    @property
    def needs_heartbeat(self) -> bool:
        """Started, not yet reported, and still held."""
        return self.started and self.outcome is None and not self.lost and not self.revoked


def heartbeat_interval(job: Job) -> float:
    """A third of the job's lease (its timeout), so two heartbeats may be late before it expires."""
    return max(job.timeout_ms, 30) / 3000.0


@dataclass
class Backoff:
    """Exponential backoff with full jitter between reconnect attempts."""

    initial: float = 0.1
    maximum: float = 10.0
    _next: float = field(default=0.0, init=False)

    def reset(self) -> None:
        """After a successful connection."""
        self._next = 0.0

    def delay(self) -> float:
        """The next wait, in seconds."""
        self._next = self.initial if self._next == 0.0 else min(self._next * 2, self.maximum)
        return random.uniform(self._next / 2, self._next)
