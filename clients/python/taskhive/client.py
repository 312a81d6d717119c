"""The blocking taskhive client."""

from __future__ import annotations

from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import grpc

from taskhive._types import (
    Job,
    JobPage,
    JobState,
    RequestFeed,
    RetryPolicy,
    Schedule,
    Status,
    SubmitAck,
    TaskLimits,
    TaskStatus,
    When,
    default_addr,
    job_ref,
    list_jobs_request,
    schedule_request,
    submit_request,
    task_limits_request,
)
from taskhive._channel import RootCertificates, default_token, sync_channel
from taskhive._otel import outgoing_metadata
from taskhive.errors import from_rpc_error
from taskhive.v1 import load_pb2 as load_pb
from taskhive.v1 import load_pb2_grpc as load_grpc
from taskhive.v1 import scheduler_pb2 as pb
from taskhive.v1 import scheduler_pb2_grpc as pb_grpc

__all__ = ["Client"]

ChannelOptions = Sequence[Tuple[str, object]]


class Client:
    """A blocking client of a taskhive server.

    >>> with Client("127.0.0.1:5000") as c:
    ...     job_id = c.submit("mail", "welcome-42", b'{"to": "x"}', delay=30)

    ``addr`` defaults to ``$TASKHIVE_ADDR``, else ``127.0.0.1:5000``. Pass ``channel`` to use
    a channel of your own (interceptors, client certificates); the client then does not close it.
    ``token`` (default ``$TASKHIVE_TOKEN``) is sent as ``authorization: Bearer`` with every
    call; ``root_certificates`` (PEM bytes or a file path) turns on TLS, trusting that CA.
    ``rpc_timeout`` is the deadline in seconds of every call except :meth:`run_job` and the
    streaming ones (``None`` = no deadline). Failed calls raise a
    :class:`~taskhive.TaskhiveError` subclass.
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        *,
        channel: Optional[grpc.Channel] = None,
        rpc_timeout: Optional[float] = 30.0,
        options: Optional[ChannelOptions] = None,
        token: Optional[str] = None,
        root_certificates: Optional[RootCertificates] = None,
    ) -> None:
        self.addr: str = default_addr(addr)
        self._own_channel = channel is None
        self._channel: grpc.Channel = channel or sync_channel(
            self.addr,
            token=default_token(token),
            root_certificates=root_certificates,
            options=options,
        )
        self._stub = pb_grpc.SchedulerStub(self._channel)
        self._load = load_grpc.LoadRunnerStub(self._channel)
        self._timeout = rpc_timeout

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the channel (unless it was passed in)."""
        if self._own_channel:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- jobs --------------------------------------------------------------------------------

    def submit(
        self,
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
    ) -> int:
        """Submits (or replaces, by task and name) a job and returns its id.

        :param task: the task (Periodic's func) a worker registered.
        :param name: the job's name, unique within the task; resubmitting replaces the job
            (unless it is running: then nothing changes).
        :param args: payload handed to the worker (str is UTF-8 encoded).
        :param sched_at: when the job is due: a datetime (naive = local time) or unix seconds.
        :param delay: or: due this many seconds from now. Neither = now.
        :param timeout: lease length in seconds (server default 600).
        :param priority: higher runs first among due jobs.
        :param retry: retry policy on failure (server defaults when None).
        :param key: flow-control key (a tenant, an account, a host; at most 255 bytes; ""
            = none): the task's per-key limits (:meth:`set_task_limits`) count jobs by key,
            and ready jobs of different keys are handed out in turn within a priority.
        """
        req = submit_request(
            task, name, args, sched_at=sched_at, delay=delay, timeout=timeout,
            priority=priority, retry=retry, key=key,
        )
        return self._call(self._stub.SubmitJob, req).job_id

    def submit_many(self, jobs: Iterable[Dict[str, Any]]) -> List[int]:
        """Submits many jobs in one call and one commit; returns their ids in order.

        Each job is a dict of :meth:`submit`'s parameters, e.g.
        ``{"task": "mail", "name": "welcome-42", "args": b"...", "delay": 30, "key": "acct-1"}``.
        Every job is validated first: one invalid job raises :class:`~taskhive.InvalidArgumentError`
        (naming it, e.g. ``jobs: [3].name: ...``) and none is submitted.
        """
        req = pb.SubmitJobsRequest(jobs=[submit_request(**j) for j in jobs])
        return [r.job_id for r in self._call(self._stub.SubmitJobs, req).jobs]

    def submit_stream(self, jobs: Iterable[Dict[str, Any]]) -> Iterator[SubmitAck]:
        """Submits jobs over one stream without waiting for answers; yields a
        :class:`~taskhive.SubmitAck` per job, in order, once it is committed.

        ``jobs`` (dicts of :meth:`submit`'s parameters, any iterable, read as the stream
        goes) are sent as fast as the connection takes them; the server commits what has
        arrived together. Each job is judged on its own: a bad one gets an ack whose ``error``
        names the field (e.g. :class:`~taskhive.InvalidArgumentError` ``task: ...``) and the
        others go on. A job dict the client cannot even build raises its ``TypeError`` /
        ``ValueError`` after the acks of the jobs before it.
        """
        feed = RequestFeed()

        def reqs() -> Iterator[pb.SubmitJobRequest]:
            for j in jobs:
                req = feed.build(j)
                if req is None:
                    return
                yield req

        try:
            for resp in self._stub.SubmitStream(reqs(), metadata=outgoing_metadata()):
                for a in resp.acks:
                    yield SubmitAck.from_proto(a)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        if feed.error is not None:
            raise feed.error

    def run_job(
        self,
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
        wait: Optional[float] = None,
    ) -> bytes:
        """Submits a job and waits for the worker's result (the ``Done`` payload).

        Same parameters as :meth:`submit` (``key`` included), plus ``wait``: at most this many
        seconds to wait (``None`` = as long as it takes). Without a retry policy the job is not retried.

        :raises NoWorkerError: no worker serves the task.
        :raises JobFailedError: the worker reported a failure.
        :raises DeadlineExceededError: no result within ``wait`` (the job stays and runs).
        """
        req = submit_request(
            task, name, args, sched_at=sched_at, delay=delay, timeout=timeout,
            priority=priority, retry=retry, key=key,
        )
        try:
            return bytes(self._stub.RunJob(req, timeout=wait, metadata=outgoing_metadata()).result)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def remove(self, task: str = "", name: str = "", *, job_id: int = 0) -> int:
        """Removes a pending, scheduled or running job (by task and name, or id); returns its id.

        :raises NotFoundError: no such job.
        """
        return self._call(self._stub.RemoveJob, job_ref(task, name, job_id)).job_id

    def get(self, task: str = "", name: str = "", *, job_id: int = 0) -> Job:
        """Looks up one job by task and name, or by id.

        :raises NotFoundError: no such job.
        """
        return Job.from_proto(self._call(self._stub.GetJob, job_ref(task, name, job_id)))

    def list_jobs_page(
        self,
        task: str,
        *,
        state: Optional[Union[JobState, int, str]] = None,
        name_prefix: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> JobPage:
        """One page of ``task``'s jobs (``page_size`` 0 = 100, at most 1000). Order: running,
        pending (run order), scheduled (due time), dead; ``state`` keeps one of them. Pass the
        page's ``next_page_token`` back for the next page; it is empty after the last.

        :raises InvalidArgumentError: ``page_size`` over 1000, or a bad ``page_token``.
        """
        req = list_jobs_request(task, state, name_prefix, page_size, page_token)
        return JobPage.from_proto(self._call(self._stub.ListJobs, req))

    def list_jobs(
        self,
        task: str,
        *,
        state: Optional[Union[JobState, int, str]] = None,
        name_prefix: str = "",
        page_size: int = 0,
    ) -> Iterator[Job]:
        """Every job of ``task`` (filtered as :meth:`list_jobs_page` does), fetching pages as
        the iteration goes.

        >>> for job in client.list_jobs("mail", state="dead"):
        ...     print(job.name, job.last_error)
        """
        token = ""
        while True:
            page = self.list_jobs_page(
                task, state=state, name_prefix=name_prefix, page_size=page_size, page_token=token
            )
            yield from page.jobs
            if not page.next_page_token:
                return
            token = page.next_page_token

    def status(self, task: Optional[str] = None) -> Status:
        """Per-task counts (workers, pending, scheduled, running, dead, ...) and totals."""
        return Status.from_proto(self._call(self._stub.Status, pb.StatusRequest(task=task or "")))

    def drop(self, task: str) -> int:
        """Removes a task and all of its jobs (live and dead); returns how many jobs went.

        :raises FailedPreconditionError: workers are registered for the task.
        """
        return self._call(self._stub.DropTask, pb.DropTaskRequest(task=task)).removed

    def pause_task(self, task: str) -> TaskStatus:
        """Pauses a task: submits are kept, none of its jobs is handed out (on any node),
        running ones finish. Durable. Returns the task's counts."""
        r = self._call(self._stub.PauseTask, pb.TaskRef(task=task))
        return TaskStatus.from_proto(r.status)

    def resume_task(self, task: str) -> TaskStatus:
        """Resumes a paused task. Returns the task's counts."""
        r = self._call(self._stub.ResumeTask, pb.TaskRef(task=task))
        return TaskStatus.from_proto(r.status)

    # -- flow control ------------------------------------------------------------------------

    def set_task_limits(
        self,
        task: str,
        *,
        max_running: Optional[int] = None,
        rate: Optional[str] = None,
        burst: Optional[int] = None,
        max_running_per_key: Optional[int] = None,
        rate_per_key: Optional[str] = None,
    ) -> TaskLimits:
        """Sets a task's flow-control limits, enforced when jobs are handed out (on every node)
        and kept across restarts. Replaces the task's limits: a limit left None is removed, and
        all None clears them (as :meth:`clear_task_limits`). Returns the limits as stored.

        :param max_running: at most this many of the task's jobs running at once.
        :param rate: at most this many starts per period: ``"100/s"``, ``"5000/h"``,
            ``"10/5m"`` (units ms, s, m, h, d).
        :param burst: starts that may go at once after an idle spell (default 1); needs a rate.
        :param max_running_per_key: at most this many jobs of one ``key`` running at once.
        :param rate_per_key: at most this many starts of one ``key`` per period.
        :raises InvalidArgumentError: a bad value; ``metadata["field"]`` names it
            (e.g. ``"rate"``). Nothing is stored.
        """
        req = task_limits_request(
            task, max_running=max_running, rate=rate, burst=burst,
            max_running_per_key=max_running_per_key, rate_per_key=rate_per_key,
        )
        r = self._call(self._stub.SetTaskLimits, req)
        return TaskLimits.from_proto(r.limits if r.HasField("limits") else None)

    def get_task_limits(self, task: str) -> TaskLimits:
        """A task's flow-control limits (all None, falsy, when it has none)."""
        r = self._call(self._stub.GetTaskLimits, pb.TaskRef(task=task))
        return TaskLimits.from_proto(r.limits if r.HasField("limits") else None)

    def clear_task_limits(self, task: str) -> None:
        """Removes every flow-control limit of a task."""
        self._call(self._stub.SetTaskLimits, task_limits_request(task))

    # -- dead set ----------------------------------------------------------------------------

    def list_dead(self, task: Optional[str] = None, limit: int = 0) -> list[Job]:
        """Jobs in the dead set (of ``task``, or every task); ``limit`` 0 = 1000."""
        r = self._call(self._stub.ListDead, pb.ListDeadRequest(task=task or "", limit=limit))
        return [Job.from_proto(j) for j in r.jobs]

    def retry_dead(self, task: str, name: Optional[str] = None) -> int:
        """Moves dead jobs (all of ``task``, or the one named) back to pending; returns the count."""
        return self._call(self._stub.RetryDead, pb.DeadRef(task=task, name=name or "")).count

    def purge_dead(self, task: Optional[str] = None, name: Optional[str] = None) -> int:
        """Deletes dead jobs for good (of every task when ``task`` is None); returns the count."""
        return self._call(
            self._stub.PurgeDead, pb.DeadRef(task=task or "", name=name or "")
        ).count

    # -- schedules ---------------------------------------------------------------------------

    def create_schedule(
        self,
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
    ) -> Schedule:
        """Creates or replaces a schedule: a job of ``task`` on every tick of ``cron`` (5 fields,
        or 6 with seconds first) read in zone ``tz`` ("" = UTC). ``missed`` ("skip", "one",
        "all") says what happens to ticks missed while no server ran.

        :raises InvalidArgumentError: a malformed expression or an unknown zone (nothing stored).
        """
        req = schedule_request(
            name, cron, task, args, tz=tz, timeout=timeout, priority=priority,
            retry=retry, missed=missed,
        )
        return Schedule.from_proto(self._call(self._stub.CreateSchedule, req))

    def list_schedules(self) -> List[Schedule]:
        """Every schedule, in name order."""
        r = self._call(self._stub.ListSchedules, pb.ListSchedulesRequest())
        return [Schedule.from_proto(s) for s in r.schedules]

    def get_schedule(self, name: str) -> Schedule:
        """One schedule with its next fire times and last job (:class:`NotFoundError` when absent)."""
        return Schedule.from_proto(self._call(self._stub.GetSchedule, pb.ScheduleRef(name=name)))

    def pause_schedule(self, name: str) -> Schedule:
        """Stops a schedule's ticks from firing."""
        return Schedule.from_proto(self._call(self._stub.PauseSchedule, pb.ScheduleRef(name=name)))

    def resume_schedule(self, name: str) -> Schedule:
        """Fires a schedule's ticks again from now on (the paused time is not caught up)."""
        return Schedule.from_proto(
            self._call(self._stub.ResumeSchedule, pb.ScheduleRef(name=name))
        )

    def delete_schedule(self, name: str) -> None:
        """Deletes a schedule; the jobs it enqueued stay."""
        self._call(self._stub.DeleteSchedule, pb.ScheduleRef(name=name))

    # -- backup ------------------------------------------------------------------------------

    def dump(self) -> Iterator[Job]:
        """Every job in the store (pending, scheduled and dead), streamed."""
        try:
            for d in self._stub.Dump(pb.DumpRequest()):
                yield Job.from_proto(d.job)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def load(self, jobs: Iterable[Job]) -> int:
        """Restores jobs produced by :meth:`dump` (replacing by task and name); returns the count."""
        reqs = (pb.DumpedJob(job=j.to_proto()) for j in jobs)
        try:
            return self._stub.Load(reqs).loaded
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # -- load runner ---------------------------------------------------------------------------

    def load_save(self, job: Union[str, dict]) -> dict:
        """Saves (or replaces, by name) a Beetle load job given as JSON text or a dict; returns
        it as stored, with defaults and inherited hosts filled in."""
        import json

        text = job if isinstance(job, str) else json.dumps(job)
        saved = self._call(self._load.SaveLoadJob, load_pb.SaveLoadJobRequest(job_json=text))
        return json.loads(saved.json)

    def load_jobs(self) -> dict:
        """Every saved load job, keyed by name (Beetle's ``/jobs``)."""
        import json

        resp = self._call(self._load.ListLoadJobs, load_pb.ListLoadJobsRequest())
        return {j.name: json.loads(j.json) for j in resp.jobs}

    def load_exec(
        self,
        name: str,
        params: Optional[dict] = None,
        *,
        max_failure_count: int = 0,
        error_400_on_threshold_exceeded: bool = False,
        agents: Union[int, str, None] = None,
    ) -> Iterator[Union[load_pb.ExecProgress, dict]]:
        """Runs a saved load job: yields progress events (about once a second) while it runs,
        then the JobExec report as a dict (Beetle's JSON, keys in its order).

        :param agents: run on this many connected load agents (``taskhive agent``), or on
            ``"all"`` of them; the server merges their figures into the one report, which then
            lists them under ``"agents"``. None runs in the server's process.
        :raises AbortedError: another execution is running.
        :raises FailedPreconditionError: fewer agents are connected than asked for (reason
            ``TOO_FEW_AGENTS``).
        """
        import json

        req = load_pb.ExecRequest(
            name=name,
            params=params or {},
            max_failure_count=max_failure_count,
            error_400_on_threshold_exceeded=error_400_on_threshold_exceeded,
        )
        if agents == "all":
            req.agents_all = True
        elif isinstance(agents, int) and not isinstance(agents, bool):
            req.agents_n = agents
        elif agents is not None:
            raise ValueError(f"agents: {agents!r} is neither a count nor 'all'")
        try:
            for ev in self._load.Exec(req):
                kind = ev.WhichOneof("event")
                if kind == "progress":
                    yield ev.progress
                elif kind == "finished":
                    yield json.loads(ev.finished.json)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # -- internals ---------------------------------------------------------------------------

    def _call(self, method: Callable[..., Any], req: Any) -> Any:
        try:
            return method(req, timeout=self._timeout, metadata=outgoing_metadata())
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
