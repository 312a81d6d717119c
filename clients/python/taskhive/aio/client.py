"""The asyncio taskhive client (``grpc.aio``)."""

from __future__ import annotations

from typing import (
    Any,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import grpc
import grpc.aio

from taskhive._channel import RootCertificates, aio_channel, default_token
from taskhive._otel import outgoing_metadata
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
from taskhive.errors import from_rpc_error
from taskhive.v1 import scheduler_pb2 as pb
from taskhive.v1 import scheduler_pb2_grpc as pb_grpc

__all__ = ["Client"]


class Client:
    """An asyncio client of a taskhive server; the same API as :class:`taskhive.Client`, awaited.

    >>> async with Client("127.0.0.1:5000") as c:
    ...     job_id = await c.submit("mail", "welcome-42", b'{"to": "x"}', delay=30)

    Create it inside the running event loop. ``addr`` defaults to ``$TASKHIVE_ADDR``, else
    ``127.0.0.1:5000``; ``channel`` may be a ``grpc.aio.Channel`` of your own (not closed by
    the client). ``rpc_timeout`` is the deadline in seconds of every call except
    :meth:`run_job` and the streaming ones. Failed calls raise a
    :class:`~taskhive.TaskhiveError` subclass.
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        *,
        channel: Optional[grpc.aio.Channel] = None,
        rpc_timeout: Optional[float] = 30.0,
        options: Optional[Sequence[Tuple[str, object]]] = None,
        token: Optional[str] = None,
        root_certificates: Optional[RootCertificates] = None,
    ) -> None:
        self.addr: str = default_addr(addr)
        self._own_channel = channel is None
        self._channel: grpc.aio.Channel = channel or aio_channel(
            self.addr,
            token=default_token(token),
            root_certificates=root_certificates,
            options=options,
        )
        self._stub = pb_grpc.SchedulerStub(self._channel)
        self._timeout = rpc_timeout

    # -- lifecycle -------------------------------------------------------------------------

    async def close(self) -> None:
        """Closes the channel (unless it was passed in)."""
        if self._own_channel:
            await self._channel.close()

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- jobs --------------------------------------------------------------------------------

    async def submit(
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

        See :meth:`taskhive.Client.submit` for the parameters (``key``: the flow-control key).
        """
        req = submit_request(
            task, name, args, sched_at=sched_at, delay=delay, timeout=timeout,
            priority=priority, retry=retry, key=key,
        )
        return (await self._call(self._stub.SubmitJob, req)).job_id

    async def submit_many(self, jobs: Iterable[Dict[str, Any]]) -> List[int]:
        """Submits many jobs in one call and one commit; returns their ids in order.

        See :meth:`taskhive.Client.submit_many`.
        """
        req = pb.SubmitJobsRequest(jobs=[submit_request(**j) for j in jobs])
        return [r.job_id for r in (await self._call(self._stub.SubmitJobs, req)).jobs]

    async def submit_stream(
        self, jobs: Union[Iterable[Dict[str, Any]], AsyncIterable[Dict[str, Any]]]
    ) -> AsyncIterator[SubmitAck]:
        """Submits jobs over one stream without waiting for answers; yields a
        :class:`~taskhive.SubmitAck` per job, in order, once it is committed.

        See :meth:`taskhive.Client.submit_stream`; ``jobs`` may also be an async iterable.
        """
        feed = RequestFeed()

        async def reqs() -> AsyncIterator[pb.SubmitJobRequest]:
            if isinstance(jobs, AsyncIterable):
                async for j in jobs:
                    req = feed.build(j)
                    if req is None:
                        return
                    yield req
            else:
                for j in jobs:
                    req = feed.build(j)
                    if req is None:
                        return
                    yield req

        try:
            async for resp in self._stub.SubmitStream(reqs(), metadata=outgoing_metadata()):
                for a in resp.acks:
                    yield SubmitAck.from_proto(a)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        if feed.error is not None:
            raise feed.error

    async def run_job(
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
        """Submits a job and waits (at most ``wait`` seconds) for the worker's result.

        See :meth:`taskhive.Client.run_job` for the parameters (``key`` included).

        :raises NoWorkerError: no worker serves the task.
        :raises JobFailedError: the worker reported a failure.
        :raises DeadlineExceededError: no result within ``wait`` (the job stays and runs).
        """
        req = submit_request(
            task, name, args, sched_at=sched_at, delay=delay, timeout=timeout,
            priority=priority, retry=retry, key=key,
        )
        try:
            return bytes((await self._stub.RunJob(req, timeout=wait, metadata=outgoing_metadata())).result)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def remove(self, task: str = "", name: str = "", *, job_id: int = 0) -> int:
        """Removes a pending, scheduled or running job (by task and name, or id); returns its id."""
        return (await self._call(self._stub.RemoveJob, job_ref(task, name, job_id))).job_id

    async def get(self, task: str = "", name: str = "", *, job_id: int = 0) -> Job:
        """Looks up one job by task and name, or by id (:class:`NotFoundError` when absent)."""
        return Job.from_proto(await self._call(self._stub.GetJob, job_ref(task, name, job_id)))

    async def list_jobs_page(
        self,
        task: str,
        *,
        state: Optional[Union[JobState, int, str]] = None,
        name_prefix: str = "",
        page_size: int = 0,
        page_token: str = "",
    ) -> JobPage:
        """One page of ``task``'s jobs; see :meth:`taskhive.Client.list_jobs_page`."""
        req = list_jobs_request(task, state, name_prefix, page_size, page_token)
        return JobPage.from_proto(await self._call(self._stub.ListJobs, req))

    async def list_jobs(
        self,
        task: str,
        *,
        state: Optional[Union[JobState, int, str]] = None,
        name_prefix: str = "",
        page_size: int = 0,
    ) -> AsyncIterator[Job]:
        """Every job of ``task``, fetching pages as the iteration goes.

        >>> async for job in client.list_jobs("mail", state="pending"):
        ...     print(job.name)
        """
        token = ""
        while True:
            page = await self.list_jobs_page(
                task, state=state, name_prefix=name_prefix, page_size=page_size, page_token=token
            )
            for job in page.jobs:
                yield job
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def status(self, task: Optional[str] = None) -> Status:
        """Per-task counts and totals."""
        return Status.from_proto(
            await self._call(self._stub.Status, pb.StatusRequest(task=task or ""))
        )

    async def drop(self, task: str) -> int:
        """Removes a task and all of its jobs; refused while workers serve it."""
        return (await self._call(self._stub.DropTask, pb.DropTaskRequest(task=task))).removed

    async def pause_task(self, task: str) -> TaskStatus:
        """Pauses a task: submits are kept, none of its jobs is handed out (on any node),
        running ones finish. Durable. Returns the task's counts."""
        r = await self._call(self._stub.PauseTask, pb.TaskRef(task=task))
        return TaskStatus.from_proto(r.status)

    async def resume_task(self, task: str) -> TaskStatus:
        """Resumes a paused task. Returns the task's counts."""
        r = await self._call(self._stub.ResumeTask, pb.TaskRef(task=task))
        return TaskStatus.from_proto(r.status)

    # -- flow control ------------------------------------------------------------------------

    async def set_task_limits(
        self,
        task: str,
        *,
        max_running: Optional[int] = None,
        rate: Optional[str] = None,
        burst: Optional[int] = None,
        max_running_per_key: Optional[int] = None,
        rate_per_key: Optional[str] = None,
    ) -> TaskLimits:
        """Sets (replaces) a task's flow-control limits and returns them as stored; all None
        clears them. See :meth:`taskhive.Client.set_task_limits`.

        :raises InvalidArgumentError: a bad value; ``metadata["field"]`` names it. Nothing is
            stored.
        """
        req = task_limits_request(
            task, max_running=max_running, rate=rate, burst=burst,
            max_running_per_key=max_running_per_key, rate_per_key=rate_per_key,
        )
        r = await self._call(self._stub.SetTaskLimits, req)
        return TaskLimits.from_proto(r.limits if r.HasField("limits") else None)

    async def get_task_limits(self, task: str) -> TaskLimits:
        """A task's flow-control limits (all None, falsy, when it has none)."""
        r = await self._call(self._stub.GetTaskLimits, pb.TaskRef(task=task))
        return TaskLimits.from_proto(r.limits if r.HasField("limits") else None)

    async def clear_task_limits(self, task: str) -> None:
        """Removes every flow-control limit of a task."""
        await self._call(self._stub.SetTaskLimits, task_limits_request(task))

    # -- dead set ----------------------------------------------------------------------------

    async def list_dead(self, task: Optional[str] = None, limit: int = 0) -> list[Job]:
        """Jobs in the dead set (of ``task``, or every task); ``limit`` 0 = 1000."""
        r = await self._call(self._stub.ListDead, pb.ListDeadRequest(task=task or "", limit=limit))
        return [Job.from_proto(j) for j in r.jobs]

    async def retry_dead(self, task: str, name: Optional[str] = None) -> int:
        """Moves dead jobs (all of ``task``, or the one named) back to pending; returns the count."""
        return (await self._call(self._stub.RetryDead, pb.DeadRef(task=task, name=name or ""))).count

    async def purge_dead(self, task: Optional[str] = None, name: Optional[str] = None) -> int:
        """Deletes dead jobs for good (of every task when ``task`` is None); returns the count."""
        return (
            await self._call(self._stub.PurgeDead, pb.DeadRef(task=task or "", name=name or ""))
        ).count

    # -- schedules ---------------------------------------------------------------------------

    async def create_schedule(
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
        return Schedule.from_proto(await self._call(self._stub.CreateSchedule, req))

    async def list_schedules(self) -> List[Schedule]:
        """Every schedule, in name order."""
        r = await self._call(self._stub.ListSchedules, pb.ListSchedulesRequest())
        return [Schedule.from_proto(s) for s in r.schedules]

    async def get_schedule(self, name: str) -> Schedule:
        """One schedule with its next fire times and last job (:class:`NotFoundError` when absent)."""
        return Schedule.from_proto(
            await self._call(self._stub.GetSchedule, pb.ScheduleRef(name=name))
        )

    async def pause_schedule(self, name: str) -> Schedule:
        """Stops a schedule's ticks from firing."""
        return Schedule.from_proto(
            await self._call(self._stub.PauseSchedule, pb.ScheduleRef(name=name))
        )

    async def resume_schedule(self, name: str) -> Schedule:
        """Fires a schedule's ticks again from now on (the paused time is not caught up)."""
        return Schedule.from_proto(
            await self._call(self._stub.ResumeSchedule, pb.ScheduleRef(name=name))
        )

    async def delete_schedule(self, name: str) -> None:
        """Deletes a schedule; the jobs it enqueued stay."""
        await self._call(self._stub.DeleteSchedule, pb.ScheduleRef(name=name))

    # -- backup ------------------------------------------------------------------------------

    async def dump(self) -> AsyncIterator[Job]:
        """Every job in the store (pending, scheduled and dead), streamed."""
        try:
            async for d in self._stub.Dump(pb.DumpRequest()):
                yield Job.from_proto(d.job)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    async def load(self, jobs: Union[Iterable[Job], AsyncIterable[Job]]) -> int:
        """Restores jobs produced by :meth:`dump` (replacing by task and name); returns the count."""

        async def reqs() -> AsyncIterator[pb.DumpedJob]:
            if isinstance(jobs, AsyncIterable):
                async for j in jobs:
                    yield pb.DumpedJob(job=j.to_proto())
            else:
                for j in jobs:
                    yield pb.DumpedJob(job=j.to_proto())

        try:
            return (await self._stub.Load(reqs())).loaded
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # -- internals ---------------------------------------------------------------------------

    async def _call(self, method: Callable[..., Any], req: Any) -> Any:
        try:
            return await method(req, timeout=self._timeout, metadata=outgoing_metadata())
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
