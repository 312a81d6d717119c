"""Plain Python views of the taskhive protobuf messages, and the outcomes a handler returns."""

from __future__ import annotations

import datetime as _dt
import enum
import os
import threading
from dataclasses import dataclass, field
from typing import Optional, Union

from taskhive.v1 import scheduler_pb2 as pb

__all__ = [
    "DEFAULT_ADDR",
    "Cancellation",
    "Done",
    "Fail",
    "Job",
    "JobPage",
    "JobState",
    "Outcome",
    "RetryPolicy",
    "SchedLater",
    "Schedule",
    "Status",
    "TaskLimits",
    "TaskStatus",
    "default_addr",
]

#: Address used when neither an address nor ``TASKHIVE_ADDR`` is given.
DEFAULT_ADDR = "127.0.0.1:5000"

#: What ``sched_at`` accepts: an aware or naive (local time) datetime, or unix seconds.
When = Union[_dt.datetime, float, int]


def default_addr(addr: Optional[str] = None) -> str:
    """Returns ``addr``, else ``$TASKHIVE_ADDR``, else :data:`DEFAULT_ADDR`."""
    return addr or os.environ.get("TASKHIVE_ADDR") or DEFAULT_ADDR


class JobState(enum.IntEnum):
    """Where a job is in its life (``taskhive.v1.JobState``)."""

    UNSPECIFIED = pb.JOB_STATE_UNSPECIFIED
    #: Due now, waiting for a worker.
    PENDING = pb.JOB_STATE_PENDING
    #: Due in the future.
    SCHEDULED = pb.JOB_STATE_SCHEDULED
    #: Leased to a worker.
    RUNNING = pb.JOB_STATE_RUNNING
    #: Failed past its retry cap.
    DEAD = pb.JOB_STATE_DEAD
    #: Finished; kept while the server keeps results (``serve --keep-results``).
    DONE = pb.JOB_STATE_DONE


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing job is retried: exponential backoff with jitter, then the dead set.

    Zero fields mean the server's defaults (25 attempts, 1 s base, 1 h cap).
    Times are in seconds (floats allowed); the wire format carries milliseconds.
    """

    #: Attempts before the job goes to the dead set (0 = server default).
    max_attempts: int = 0
    #: First backoff in seconds (0 = server default).
    backoff_base: float = 0.0
    #: Backoff cap in seconds (0 = server default).
    backoff_max: float = 0.0

    def to_proto(self) -> pb.RetryPolicy:
        """The ``taskhive.v1.RetryPolicy`` message."""
        return pb.RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base_ms=_ms(self.backoff_base),
            backoff_max_ms=_ms(self.backoff_max),
        )

    @classmethod
    def from_proto(cls, m: pb.RetryPolicy) -> "RetryPolicy":
        """Builds the policy from its message."""
        return cls(
            max_attempts=m.max_attempts,
            backoff_base=m.backoff_base_ms / 1000.0,
            backoff_max=m.backoff_max_ms / 1000.0,
        )


class Cancellation:
    """Whether the server cancelled a job while a worker ran it: a ``threading.Event``-like
    flag (``is_set``, ``wait``) with the server's :attr:`reason`.

    Every :class:`Job` has one, :attr:`Job.cancelled`; the workers set it when the server sends
    a CancelJob for the job (it was removed while running, or the cluster node holding its
    lease gave it up). A sync handler polls it (``if job.cancelled.wait(1.0): ...``) and
    returns once its work is stopped; whatever it returns then is not applied. Thread-safe.
    """

    __slots__ = ("_event", "_reason")
    _create = threading.Lock()

    def __init__(self) -> None:
        # Made on first use: most Job objects (GetJob, Dump, ...) never need one.
        self._event: Optional[threading.Event] = None
        self._reason: Optional[str] = None

    def _ev(self) -> threading.Event:
        ev = self._event
        if ev is None:
            with Cancellation._create:
                if self._event is None:
                    self._event = threading.Event()
                ev = self._event
        return ev

    def is_set(self) -> bool:
        """True once the server cancelled the job."""
        ev = self._event
        return ev is not None and ev.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until the job is cancelled or ``timeout`` seconds passed; returns
        :meth:`is_set` (so ``while not job.cancelled.wait(0.5): step()`` works)."""
        return self._ev().wait(timeout)

    @property
    def reason(self) -> Optional[str]:
        """The server's reason (for logs), None while the job is not cancelled."""
        return self._reason

    def _set(self, reason: str) -> None:
        """Marks the job cancelled (the workers call this; first reason wins)."""
        ev = self._ev()
        if not ev.is_set():
            self._reason = reason
            ev.set()

    def __repr__(self) -> str:
        return f"Cancellation(reason={self._reason!r})" if self.is_set() else "Cancellation()"


@dataclass(frozen=True)
class Job:
    """A job as the server reports it (``GetJob``, ``ListDead``, ``Dump``, or handed to a worker)."""

    id: int
    task: str
    name: str
    args: bytes = b""
    #: When the job is (or was) due, unix milliseconds.
    sched_at_ms: int = 0
    #: Lease length in milliseconds.
    timeout_ms: int = 0
    priority: int = 0
    #: Failed attempts so far (fails, lease expiries, lost workers).
    attempts: int = 0
    #: Times the job was rescheduled with :class:`SchedLater` (Periodic's ``count``).
    run_count: int = 0
    state: JobState = JobState.UNSPECIFIED
    #: The lease to report against (only on jobs handed to a worker).
    lease_id: int = 0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    last_error: str = ""
    #: A done job's result (``serve --keep-results``).
    result: bytes = b""
    #: When a done job finished, unix ms (0 otherwise).
    finished_at_ms: int = 0
    #: The W3C trace context a worker continues (empty when the submitter sent none).
    traceparent: str = ""
    #: The flow-control key it was submitted with (a tenant, an account, a host; "" = none).
    key: str = ""
    #: Set when the server cancelled the job while this worker ran it (see :class:`Cancellation`).
    cancelled: Cancellation = field(default_factory=Cancellation, compare=False, repr=False)

    def is_cancelled(self) -> bool:
        """True once the server cancelled the job a worker runs (``job.cancelled.reason`` says why)."""
        return self.cancelled.is_set()

    @property
    def sched_at(self) -> _dt.datetime:
        """When the job is (or was) due, as an aware UTC datetime."""
        return _dt.datetime.fromtimestamp(self.sched_at_ms / 1000.0, tz=_dt.timezone.utc)

    @property
    def timeout(self) -> float:
        """Lease length in seconds."""
        return self.timeout_ms / 1000.0

    @property
    def count(self) -> int:
        """Alias of :attr:`run_count` (the name Periodic uses)."""
        return self.run_count

    @classmethod
    def from_proto(cls, m: pb.Job) -> "Job":
        """Builds the view from a ``taskhive.v1.Job`` message."""
        return cls(
            id=m.id,
            task=m.task,
            name=m.name,
            args=bytes(m.args),
            sched_at_ms=m.sched_at_ms,
            timeout_ms=m.timeout_ms,
            priority=m.priority,
            attempts=m.attempts,
            run_count=m.run_count,
            state=_state(m.state),
            lease_id=m.lease_id,
            retry=RetryPolicy.from_proto(m.retry),
            last_error=m.last_error,
            result=bytes(m.result),
            finished_at_ms=m.finished_at_ms,
            traceparent=m.traceparent,
            key=m.key,
        )

    def to_proto(self) -> pb.Job:
        """The ``taskhive.v1.Job`` message (what :meth:`Client.load` sends)."""
        return pb.Job(
            id=self.id,
            task=self.task,
            name=self.name,
            args=self.args,
            sched_at_ms=self.sched_at_ms,
            timeout_ms=self.timeout_ms,
            priority=self.priority,
            attempts=self.attempts,
            run_count=self.run_count,
            state=pb.JobState.Name(int(self.state)),
            lease_id=self.lease_id,
            retry=self.retry.to_proto(),
            last_error=self.last_error,
            key=self.key,
        )


@dataclass(frozen=True)
class JobPage:
    """One page of ``ListJobs``: the jobs, and the token of the next page (empty at the end)."""

    jobs: list
    next_page_token: str = ""

    @classmethod
    def from_proto(cls, m: pb.ListJobsResponse) -> "JobPage":
        return cls(jobs=[Job.from_proto(j) for j in m.jobs], next_page_token=m.next_page_token)


def list_jobs_request(
    task: str,
    state: Optional[Union["JobState", int, str]] = None,
    name_prefix: str = "",
    page_size: int = 0,
    page_token: str = "",
) -> pb.ListJobsRequest:
    """A ``ListJobsRequest``; ``state`` is a :class:`JobState`, its value, or a name such as
    ``"pending"`` (None = every state)."""
    if state is None:
        st = 0
    elif isinstance(state, str):
        st = int(JobState[state.upper()])
    else:
        st = int(state)
    return pb.ListJobsRequest(
        task=task, state=st, name_prefix=name_prefix, page_size=page_size, page_token=page_token
    )


@dataclass(frozen=True)
class SubmitAck:
    """The answer to one job of ``submit_stream``: its id once committed, or why it was refused."""

    #: The job's 0-based index in the stream.
    seq: int
    job_id: int = 0
    #: A job with the same task and name existed and was replaced (it kept its id).
    replaced: bool = False
    #: A job with the same task and name is running: nothing changed.
    running: bool = False
    #: ``None`` when the job was committed, else the error ``submit`` would have raised
    #: (e.g. :class:`~taskhive.InvalidArgumentError` naming the field). Nothing was stored.
    error: Optional[Exception] = None

    @property
    def ok(self) -> bool:
        """Whether the job was committed."""
        return self.error is None

    @classmethod
    def from_proto(cls, m: pb.SubmitAck) -> "SubmitAck":
        """Builds the view from a ``taskhive.v1.SubmitAck`` message."""
        from taskhive.errors import from_code_name

        return cls(
            seq=m.seq,
            job_id=m.job_id,
            replaced=m.replaced,
            running=m.running,
            error=from_code_name(m.error_code, m.error, m.reason) if m.error_code else None,
        )


class RequestFeed:
    """Turns job dicts into ``SubmitJobRequest`` messages for a request stream.

    A job that cannot be built (a client-side ``TypeError``/``ValueError``) ends the feed,
    which half-closes the stream; the caller re-raises it once the acks of the jobs before it
    are in."""

    def __init__(self) -> None:
        self.error: Optional[BaseException] = None

    def build(self, job: dict) -> Optional[pb.SubmitJobRequest]:
        """The request for ``job``, or ``None`` (and the error kept) when it cannot be built."""
        try:
            return submit_request(**job)
        except (TypeError, ValueError) as e:
            self.error = e
            return None


def _state(v: int) -> JobState:
    try:
        return JobState(v)
    except ValueError:  # a newer server's state
        return JobState.UNSPECIFIED


@dataclass(frozen=True)
class TaskLimits:
    """A task's flow-control limits, enforced by the server when it hands jobs out (on every
    node). ``None`` = no limit of that kind; all ``None`` = no limits at all (falsy).

    Rates are ``"N/UNIT"`` or ``"N/KUNIT"`` with UNIT one of ``ms``, ``s``, ``m``, ``h``, ``d``:
    ``"100/s"``, ``"5000/h"``, ``"10/5m"``. The server reports them in its own spelling
    (``"1/60s"`` comes back as ``"1/m"``).
    """

    #: At most this many of the task's jobs leased (running) at once.
    max_running: Optional[int] = None
    #: At most this many starts per period, e.g. ``"100/s"``.
    rate: Optional[str] = None
    #: Starts that may go at once after an idle spell (server default 1); needs a rate.
    burst: Optional[int] = None
    #: At most this many jobs of one key (``submit(..., key=...)``) leased at once.
    max_running_per_key: Optional[int] = None
    #: At most this many starts of one key per period.
    rate_per_key: Optional[str] = None

    def __bool__(self) -> bool:
        """Whether any limit is set."""
        return any(
            v is not None
            for v in (
                self.max_running, self.rate, self.burst, self.max_running_per_key,
                self.rate_per_key,
            )
        )

    def to_proto(self) -> pb.TaskLimits:
        """The ``taskhive.v1.TaskLimits`` message (None fields stay unset)."""
        m = pb.TaskLimits(rate=self.rate or "", rate_per_key=self.rate_per_key or "")
        if self.max_running is not None:
            m.max_running = self.max_running
        if self.burst is not None:
            m.burst = self.burst
        if self.max_running_per_key is not None:
            m.max_running_per_key = self.max_running_per_key
        return m

    @classmethod
    def from_proto(cls, m: Optional[pb.TaskLimits]) -> "TaskLimits":
        """Builds the view from a ``taskhive.v1.TaskLimits`` message (unset fields, 0 and ""
        = no limit of that kind; None = no limits)."""
        if m is None:
            return cls()

        def count(name: str) -> Optional[int]:
            return (getattr(m, name) or None) if m.HasField(name) else None

        return cls(
            max_running=count("max_running"),
            rate=m.rate or None,
            burst=count("burst"),
            max_running_per_key=count("max_running_per_key"),
            rate_per_key=m.rate_per_key or None,
        )


def task_limits_request(
    task: str,
    *,
    max_running: Optional[int] = None,
    rate: Optional[str] = None,
    burst: Optional[int] = None,
    max_running_per_key: Optional[int] = None,
    rate_per_key: Optional[str] = None,
) -> pb.SetTaskLimitsRequest:
    """Builds a ``SetTaskLimitsRequest`` (every limit None = clear the task's limits)."""
    limits = TaskLimits(
        max_running=max_running,
        rate=rate,
        burst=burst,
        max_running_per_key=max_running_per_key,
        rate_per_key=rate_per_key,
    )
    return pb.SetTaskLimitsRequest(task=task, limits=limits.to_proto())


@dataclass(frozen=True)
class TaskStatus:
    """Counts for one task (or the totals over every task, with an empty ``task``)."""

    task: str
    workers: int = 0
    #: Due and waiting for a worker.
    pending: int = 0
    #: Due later.
    scheduled: int = 0
    running: int = 0
    dead: int = 0
    #: Earliest due time among pending and scheduled jobs, unix ms; 0 when none.
    next_sched_at_ms: int = 0
    #: Waiting for a named lock.
    locked: int = 0
    #: Every job of the task goes to every worker (Periodic's BROADCAST).
    broadcast: bool = False
    #: Paused (:meth:`Client.pause_task`): its jobs are kept, none is handed out.
    paused: bool = False
    #: The task's flow-control limits (:meth:`Client.set_task_limits`); None when it has none.
    limits: Optional["TaskLimits"] = None
    #: Ready jobs held back by a limit (the task's, or their key's).
    waiting_on_limit: int = 0

    @classmethod
    def from_proto(cls, m: pb.TaskStatus) -> "TaskStatus":
        """Builds the view from a ``taskhive.v1.TaskStatus`` message."""
        return cls(
            task=m.task,
            workers=m.workers,
            pending=m.pending,
            scheduled=m.scheduled,
            running=m.running,
            dead=m.dead,
            next_sched_at_ms=m.next_sched_at_ms,
            locked=m.locked,
            broadcast=m.broadcast,
            paused=m.paused,
            limits=TaskLimits.from_proto(m.limits) if m.HasField("limits") else None,
            waiting_on_limit=m.waiting_on_limit,
        )


@dataclass(frozen=True)
class Status:
    """The answer of :meth:`Client.status`: per-task counts by task name, and totals."""

    tasks: dict[str, TaskStatus]
    totals: TaskStatus

    def __getitem__(self, task: str) -> TaskStatus:
        """The counts of ``task`` (all zero when the server does not know it)."""
        return self.tasks.get(task) or TaskStatus(task=task)

    @classmethod
    def from_proto(cls, m: pb.StatusResponse) -> "Status":
        """Builds the view from a ``taskhive.v1.StatusResponse`` message."""
        return cls(
            tasks={t.task: TaskStatus.from_proto(t) for t in m.tasks},
            totals=TaskStatus.from_proto(m.totals),
        )


# ---------------------------------------------------------------------------------------------
# Outcomes


@dataclass(frozen=True)
class Done:
    """The job succeeded: it is removed and ``result`` goes to ``run_job`` callers."""

    result: Union[bytes, str] = b""

    def to_proto(self) -> pb.Outcome:
        """The ``taskhive.v1.Outcome`` message."""
        r = self.result.encode() if isinstance(self.result, str) else bytes(self.result)
        return pb.Outcome(done=pb.Done(result=r))


@dataclass(frozen=True)
class Fail:
    """The attempt failed: retried per the job's policy, or dead at once when ``retry`` is False."""

    error: str = ""
    retry: bool = True

    def to_proto(self) -> pb.Outcome:
        """The ``taskhive.v1.Outcome`` message."""
        return pb.Outcome(fail=pb.Fail(error=self.error, retry=self.retry))


@dataclass(frozen=True)
class SchedLater:
    """Run the job again ``delay`` seconds from now, adding ``count_step`` to its run count."""

    delay: float
    count_step: int = 1

    def to_proto(self) -> pb.Outcome:
        """The ``taskhive.v1.Outcome`` message."""
        return pb.Outcome(
            sched_later=pb.SchedLater(delay_ms=max(0, _ms(self.delay)), count_step=self.count_step)
        )


#: What a handler may return: an outcome, or None (done, empty result), or bytes/str (done).
Outcome = Union[Done, Fail, SchedLater]
HandlerResult = Union[Done, Fail, SchedLater, bytes, str, None]


def to_outcome(value: object) -> Outcome:
    """Normalises a handler's return value to an outcome (raises TypeError when it cannot)."""
    if value is None:
        return Done()
    if isinstance(value, (Done, Fail, SchedLater)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        return Done(value if isinstance(value, str) else bytes(value))
    raise TypeError(
        f"a handler must return Done, Fail, SchedLater, bytes, str or None, not {type(value).__name__}"
    )


def error_text(exc: BaseException) -> str:
    """How an exception raised by a handler is reported: ``Type: message`` (or just ``Type``)."""
    try:
        msg = str(exc)
    except Exception:  # noqa: BLE001 - a broken __str__ must not lose the failure
        msg = ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# Requests


def _ms(seconds: float) -> int:
    return int(round(seconds * 1000))


def sched_at_ms(sched_at: Optional[When], delay: Optional[float]) -> int:
    """The ``sched_at_ms`` field for ``sched_at`` (datetime or unix seconds) or ``delay`` seconds."""
    if sched_at is not None and delay is not None:
        raise ValueError("give sched_at or delay, not both")
    if delay is not None:
        if delay <= 0:
            return 0
        return _ms(_dt.datetime.now(tz=_dt.timezone.utc).timestamp() + delay)
    if sched_at is None:
        return 0
    if isinstance(sched_at, _dt.datetime):
        return _ms(sched_at.timestamp())
    if isinstance(sched_at, (int, float)):
        return _ms(float(sched_at))
    raise TypeError(f"sched_at must be a datetime or unix seconds, not {type(sched_at).__name__}")


def submit_request(
    task: str,
    name: str,
    args: Union[bytes, str] = b"",
    *,
    sched_at: Optional[When] = None,
    delay: Optional[float] = None,
    timeout: Optional[float] = None,
    priority: int = 0,
    retry: Optional[RetryPolicy] = None,
    key: str = "",
) -> pb.SubmitJobRequest:
    """Builds the ``SubmitJobRequest`` shared by ``submit``, ``submit_many``,
    ``submit_stream`` and ``run_job``."""
    req = pb.SubmitJobRequest(
        task=task,
        name=name,
        args=args.encode() if isinstance(args, str) else bytes(args),
        sched_at_ms=sched_at_ms(sched_at, delay),
        priority=priority,
        key=key,
    )
    if timeout is not None:
        req.timeout_ms = _ms(timeout)
    if retry is not None:
        req.retry.CopyFrom(retry.to_proto())
    return req


def job_ref(task: str = "", name: str = "", job_id: int = 0) -> pb.JobRef:
    """A ``JobRef`` by id, or by task and name."""
    if not job_id and not (task and name):
        raise ValueError("give task and name, or job_id")
    return pb.JobRef(job_id=job_id, task=task, name=name)


@dataclass(frozen=True)
class Schedule:
    """A schedule: a cron expression that enqueues a job of ``task`` on every tick, named
    ``NAME@<tick in RFC 3339 UTC>``."""

    name: str
    cron: str
    #: IANA zone the expression is read in ("" = UTC).
    tz: str
    task: str
    args: bytes = b""
    priority: int = 0
    #: Lease length of the jobs in seconds (0 = the server's default).
    timeout: float = 0.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    #: Missed ticks after downtime: "skip", "one" or "all".
    missed: str = "skip"
    paused: bool = False
    #: The last tick fired (or when created or resumed), unix ms.
    last_tick_ms: int = 0
    #: The job the last tick enqueued ("" before the first tick).
    last_job: str = ""
    #: Its id while it exists (``get_schedule`` only).
    last_job_id: int = 0
    #: The next fire times, unix ms (``get_schedule`` only).
    next_fire_ms: tuple[int, ...] = ()

    @classmethod
    def from_proto(cls, m: pb.Schedule) -> "Schedule":
        """Builds the view from a ``taskhive.v1.Schedule`` message."""
        return cls(
            name=m.name,
            cron=m.cron,
            tz=m.tz,
            task=m.task,
            args=bytes(m.args),
            priority=m.priority,
            timeout=m.timeout_ms / 1000.0,
            retry=RetryPolicy.from_proto(m.retry),
            missed=_MISSED_NAMES.get(m.missed, "skip"),
            paused=m.paused,
            last_tick_ms=m.last_tick_ms,
            last_job=m.last_job,
            last_job_id=m.last_job_id,
            next_fire_ms=tuple(m.next_fire_ms),
        )


_MISSED_NAMES = {
    pb.MISSED_TICKS_UNSPECIFIED: "skip",
    pb.MISSED_TICKS_SKIP: "skip",
    pb.MISSED_TICKS_ONE: "one",
    pb.MISSED_TICKS_ALL: "all",
}
_MISSED_VALUES = {
    "skip": pb.MISSED_TICKS_SKIP,
    "one": pb.MISSED_TICKS_ONE,
    "all": pb.MISSED_TICKS_ALL,
}


def schedule_request(
    name: str,
    cron: str,
    task: str,
    args: Union[bytes, str] = b"",
    *,
    tz: str = "",
    timeout: Optional[float] = None,
    priority: int = 0,
    retry: Optional[RetryPolicy] = None,
    missed: str = "skip",
) -> pb.CreateScheduleRequest:
    """Builds a ``CreateScheduleRequest``; ``missed`` is "skip", "one" or "all"."""
    if missed not in _MISSED_VALUES:
        raise ValueError(f"missed must be skip, one or all, not {missed!r}")
    req = pb.CreateScheduleRequest(
        name=name,
        cron=cron,
        tz=tz,
        task=task,
        args=args.encode() if isinstance(args, str) else bytes(args),
        priority=priority,
        missed=_MISSED_VALUES[missed],
    )
    if timeout is not None:
        req.timeout_ms = _ms(timeout)
    if retry is not None:
        req.retry.CopyFrom(retry.to_proto())
    return req
