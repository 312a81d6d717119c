"""The asyncio taskhive worker: async (or thread-pooled sync) handlers fed by one Work stream."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Awaitable, Callable, Optional, Sequence, Tuple, Union

import grpc
import grpc.aio

from taskhive._channel import RootCertificates, aio_channel, default_token
from taskhive._otel import job_span
from taskhive._types import Fail, HandlerResult, Job, Outcome, default_addr
from taskhive._worker_common import (
    FATAL_CODES,
    WORKER_CHANNEL_OPTIONS,
    Backoff,
    Lease,
    default_worker_name,
    heartbeat,
    heartbeat_interval,
    hello,
    release,
    settle,
)
from taskhive.errors import from_rpc_error
from taskhive.v1 import scheduler_pb2 as pb
from taskhive.v1 import scheduler_pb2_grpc as pb_grpc

__all__ = ["AckCallback", "Handler", "Worker"]

log = logging.getLogger("taskhive.aio.worker")

#: A job handler: ``async def`` (awaited on the loop) or plain ``def`` (run in a thread pool of
#: ``capacity`` threads). It returns Done / Fail / SchedLater, bytes or str (done with that
#: result) or None (done); raising fails the attempt with the exception's text.
Handler = Callable[[Job], Union[HandlerResult, Awaitable[HandlerResult]]]
#: Called (and awaited when async) once the server answered a job's outcome: ``error`` is None
#: when it was applied, else why it was rejected.
AckCallback = Callable[[Job, Outcome, Optional[str]], Union[None, Awaitable[None]]]

_CLOSE = object()
_in_handler: contextvars.ContextVar[Optional["Worker"]] = contextvars.ContextVar(
    "taskhive_aio_worker", default=None
)


class _Conn:
    """One Work stream and what was handed out on it."""

    def __init__(self) -> None:
        self.out: "asyncio.Queue[object]" = asyncio.Queue()
        self.call: Optional[grpc.aio.StreamStreamCall] = None
        self.leases: dict[int, Lease] = {}
        #: The tasks running the handlers of this stream's leases.
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self.running = 0
        self.closing = False
        self.alive = True
        self.welcomed = False

    async def requests(self, first: pb.WorkerMessage) -> AsyncIterator[pb.WorkerMessage]:
        yield first
        while True:
            m = await self.out.get()
            if m is _CLOSE:
                return
            yield m  # type: ignore[misc]


def _is_async(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)
    )


class Worker:
    """Runs job handlers for the tasks registered with :meth:`task`, on the asyncio loop.

    >>> w = Worker("127.0.0.1:5000", capacity=4)
    >>> @w.task("random_print")
    ... async def random_print(job):
    ...     print(job.run_count, job.name)
    ...     return SchedLater(5) if job.run_count < 10 else Done()
    >>> await w.run()   # until `await w.stop()` from another task

    The same behaviour as :class:`taskhive.Worker`: at most ``capacity`` handlers at once,
    heartbeats for long jobs, reconnection with exponential backoff, graceful :meth:`stop`.

    When the server cancels a running job (removed while running, or given up by its cluster
    node), ``job.cancelled`` is set and the task running an ``async def`` handler is
    cancelled with the server's reason as message (``asyncio.CancelledError`` reaches the
    handler); a plain ``def`` handler, in its thread, checks ``job.cancelled``. Its outcome is
    not applied; once it is over the worker reports the lease, which the server refuses as
    expected and which frees the slot.
    """

    def __init__(
        self,
        addr: Optional[str] = None,
        *,
        capacity: int = 1,
        name: Optional[str] = None,
        reconnect_min: float = 0.1,
        reconnect_max: float = 10.0,
        on_ack: Optional[AckCallback] = None,
        options: Optional[Sequence[Tuple[str, object]]] = None,
        channel: Optional[grpc.aio.Channel] = None,
        token: Optional[str] = None,
        root_certificates: Optional[RootCertificates] = None,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.addr: str = default_addr(addr)
        self.capacity: int = capacity
        self.name: str = name or default_worker_name()
        self.on_ack = on_ack
        self._handlers: dict[str, Handler] = {}
        self._channel = channel
        self._token = default_token(token)
        self._root_certificates = root_certificates
        self._channel_options = list(options or WORKER_CHANNEL_OPTIONS)
        self._backoff = Backoff(reconnect_min, reconnect_max)
        self._conn: Optional[_Conn] = None
        self._stopping = False
        self._forced = False
        self._started = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._executor: Optional[ThreadPoolExecutor] = None
        self._sem: Optional[asyncio.Semaphore] = None
        # Events are made inside run() (on the running loop).
        self._stop_event: Optional[asyncio.Event] = None
        self._connected: Optional[asyncio.Event] = None
        self._done: Optional[asyncio.Event] = None
        self._hb_wake: Optional[asyncio.Event] = None
        self.worker_id: Optional[str] = None

    # -- registration ------------------------------------------------------------------------

    def task(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator registering a handler (``async def`` or ``def``) for task ``name``."""

        def register(fn: Handler) -> Handler:
            self.add_task(name, fn)
            return fn

        return register

    def add_task(self, name: str, handler: Handler) -> None:
        """Registers ``handler`` for task ``name`` (before :meth:`run`)."""
        if self._started:
            raise RuntimeError("register tasks before the worker runs")
        self._handlers[name] = handler

    @property
    def tasks(self) -> list[str]:
        """The registered task names."""
        return list(self._handlers)

    # -- running -----------------------------------------------------------------------------

    def _events(self) -> None:
        if self._done is None:
            self._stop_event = asyncio.Event()
            self._connected = asyncio.Event()
            self._done = asyncio.Event()
            self._hb_wake = asyncio.Event()

    async def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Waits until the server welcomed this worker on a stream; False on timeout."""
        self._events()
        assert self._connected is not None
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
            return True
        except asyncio.TimeoutError:
            return False

    async def run(self) -> None:
        """Connects and runs jobs until :meth:`stop`; reconnects when the stream breaks.

        :raises TaskhiveError: the server refused the worker (e.g. INVALID_ARGUMENT).
        """
        if not self._handlers:
            raise ValueError("no task registered: use @worker.task(name)")
        if self._started:
            raise RuntimeError("a Worker runs once")
        self._started = True
        self._events()
        assert self._stop_event and self._done and self._hb_wake
        own_channel = self._channel is None
        channel = self._channel or aio_channel(
            self.addr,
            token=self._token,
            root_certificates=self._root_certificates,
            options=self._channel_options,
        )
        stub = pb_grpc.SchedulerStub(channel)
        self._sem = asyncio.Semaphore(self.capacity)
        if any(not _is_async(h) for h in self._handlers.values()):
            self._executor = ThreadPoolExecutor(self.capacity, thread_name_prefix="taskhive-handler")
        hb = asyncio.create_task(self._heartbeats())
        try:
            while not self._stopping:
                conn = self._open(stub)
                try:
                    await self._read(conn)
                    why = "the server ended the stream"
                except grpc.RpcError as e:
                    if e.code() in FATAL_CODES:
                        raise from_rpc_error(e) from None
                    why = f"{e.code().name}: {e.details()}"
                finally:
                    self._close(conn)
                if self._stopping:
                    break
                if conn.welcomed:
                    self._backoff.reset()
                delay = self._backoff.delay()
                log.warning("work stream lost (%s); reconnecting in %.2fs", why, delay)
                try:
                    await asyncio.wait_for(self._stop_event.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        except asyncio.CancelledError:
            self._forced = True
            raise
        finally:
            self._stopping = True
            hb.cancel()
            await asyncio.gather(hb, return_exceptions=True)
            if self._forced:
                for t in self._tasks:
                    t.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
            if own_channel:
                await channel.close()
            self._done.set()

    async def stop(self, timeout: Optional[float] = None) -> bool:
        """Stops gracefully: takes no new jobs, lets running handlers finish and report, closes.

        Waits up to ``timeout`` seconds (None = no limit); past it the stream and the handler
        tasks are cancelled. Returns True when the worker stopped gracefully in time.
        Called from a handler, it does not wait. As with :meth:`taskhive.Worker.stop`, jobs
        The worker first pauses itself (a hello with capacity 0) so no more jobs are pushed
        while it drains; one already on its way is not started and goes back to the queue when
        the stream closes (the server counts that as a failed attempt).
        """
        self._events()
        assert self._stop_event and self._done and self._hb_wake
        self._stopping = True
        if self._conn is not None:
            if self._conn.alive and not self._conn.closing:
                self._conn.out.put_nowait(hello([], 0, self.name))
            self._maybe_finish(self._conn)
        self._stop_event.set()
        self._hb_wake.set()
        if not self._started or _in_handler.get() is self:
            return True
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
            return not self._forced
        except asyncio.TimeoutError:
            pass
        self._forced = True
        conn = self._conn
        if conn is not None and conn.call is not None:
            conn.call.cancel()
        for t in self._tasks:
            t.cancel()
        await self._done.wait()
        return False

    # -- stream ------------------------------------------------------------------------------

    def _open(self, stub: pb_grpc.SchedulerStub) -> _Conn:
        conn = _Conn()
        self._conn = conn
        conn.call = stub.Work(conn.requests(hello(self.tasks, self.capacity, self.name)))
        if self._stopping:
            self._maybe_finish(conn)
        return conn

    async def _read(self, conn: _Conn) -> None:
        try:
            await self._read_messages(conn)
        except asyncio.CancelledError:
            # grpc.aio raises CancelledError on a call cancelled locally: our forced stop.
            if self._forced and conn.call is not None and conn.call.cancelled():
                return
            raise

    async def _read_messages(self, conn: _Conn) -> None:
        assert conn.call is not None and self._connected is not None
        async for msg in conn.call:
            kind = msg.WhichOneof("msg")
            if kind == "job":
                self._on_job(conn, Job.from_proto(msg.job))
            elif kind == "ack":
                await self._on_ack(conn, msg.ack.lease_id, msg.ack.error)
            elif kind == "cancel":
                self._on_cancel(conn, msg.cancel)
            elif kind == "heartbeat":
                for lid in msg.heartbeat.lost_lease_ids:
                    lease = conn.leases.get(lid)
                    if lease is not None and not lease.lost:
                        lease.lost = True
                        log.warning("lease %d of job %s/%s lost", lid, lease.job.task, lease.job.name)
            elif kind == "welcome":
                self.worker_id = msg.welcome.worker_id
                conn.welcomed = True
                self._backoff.reset()
                self._connected.set()
                log.info("worker %s connected to %s", self.worker_id, self.addr)

    def _close(self, conn: _Conn) -> None:
        assert self._connected is not None
        conn.alive = False
        self._connected.clear()
        if self._conn is conn:
            self._conn = None
        conn.leases = {lid: l for lid, l in conn.leases.items() if l.started and l.outcome is None}
        conn.out.put_nowait(_CLOSE)

    def _on_job(self, conn: _Conn, job: Job) -> None:
        assert self._hb_wake is not None
        lease = Lease.of(job)
        conn.leases[job.lease_id] = lease
        if self._stopping:
            log.info("stopping: not starting job %s/%s", job.task, job.name)
            return
        lease.started = True
        conn.running += 1
        self._hb_wake.set()
        t = asyncio.create_task(self._execute(conn, lease))
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        conn.tasks[job.lease_id] = t
        t.add_done_callback(lambda _: conn.tasks.pop(job.lease_id, None))

    def _on_cancel(self, conn: _Conn, cancel: pb.CancelJob) -> None:
        lease = conn.leases.get(cancel.lease_id)
        if lease is None or lease.revoked:
            return
        lease.revoked = True
        job = lease.job
        log.info("job %s/%s cancelled by the server: %s", job.task, job.name, cancel.reason)
        job.cancelled._set(cancel.reason)
        task = conn.tasks.get(cancel.lease_id)
        if task is not None:
            # A thread cannot be interrupted: a sync handler sees job.cancelled and keeps its
            # slot until it returns. An async one (or a job waiting for a slot) is cancelled.
            handler = self._handlers.get(job.task)
            if handler is None or _is_async(handler) or not lease.invoked:
                task.cancel(msg=cancel.reason)
        elif not lease.started and lease.outcome is None and conn.alive:
            # Never started (the worker is stopping): release the lease at once.
            lease.outcome, msg = release(job.lease_id, cancel.reason)
            conn.out.put_nowait(msg)

    async def _execute(self, conn: _Conn, lease: Lease) -> None:
        job = lease.job
        _in_handler.set(self)  # this task's own context copy
        assert self._sem is not None
        try:
            async with self._sem:
                lease.invoked = True
                value, exc = await self._invoke(job)
        except asyncio.CancelledError:
            if not lease.revoked or self._forced:
                conn.running -= 1
                conn.leases.pop(job.lease_id, None)
                raise
            # Cancelled by the server: the handler is over, release the lease below.
            value, exc = None, None
        outcome, msg = settle(job, value, exc)
        if lease.revoked:
            # Not applied: the report only frees the slot (the server refuses it).
            outcome, msg = release(job.lease_id, job.cancelled.reason or "")
        conn.running -= 1
        lease.outcome = outcome
        if conn.alive:
            conn.out.put_nowait(msg)
        else:
            conn.leases.pop(job.lease_id, None)
            log.warning("job %s/%s finished after its stream was lost; outcome dropped", job.task, job.name)
        self._maybe_finish(conn)

    async def _invoke(self, job: Job) -> tuple[object, Optional[BaseException]]:
        """Runs the handler: (its return value, None) or (None, the exception it raised)."""
        handler = self._handlers.get(job.task)
        if handler is None:
            return Fail(f"no handler for task {job.task}"), None
        try:
            with job_span(job):
                if _is_async(handler):
                    value = await handler(job)  # type: ignore[misc]
                else:
                    loop = asyncio.get_running_loop()
                    # Taken inside the span: the handler's thread sees it as current.
                    ctx = contextvars.copy_context()
                    value = await loop.run_in_executor(self._executor, ctx.run, handler, job)
                    if inspect.isawaitable(value):
                        value = await value
            return value, None
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # noqa: BLE001 - a handler's failure is the job's failure
            log.debug("job %s/%s failed", job.task, job.name, exc_info=True)
            return None, e

    async def _on_ack(self, conn: _Conn, lease_id: int, error: str) -> None:
        lease = conn.leases.pop(lease_id, None)
        if lease is None or lease.outcome is None:
            return
        if error and lease.revoked:
            log.debug("report of cancelled job %s/%s refused: %s", lease.job.task, lease.job.name, error)
        elif error:
            log.warning("outcome of job %s/%s rejected: %s", lease.job.task, lease.job.name, error)
        if self.on_ack is not None:
            try:
                r = self.on_ack(lease.job, lease.outcome, error or None)
                if inspect.isawaitable(r):
                    await r
            except Exception:  # noqa: BLE001
                log.exception("on_ack callback failed")

    def _maybe_finish(self, conn: _Conn) -> None:
        """Half-closes the stream once stopping and no handler of it runs."""
        if self._stopping and conn.running == 0 and not conn.closing:
            conn.closing = True
            conn.out.put_nowait(_CLOSE)

    async def _heartbeats(self) -> None:
        assert self._hb_wake is not None
        while True:
            self._hb_wake.clear()
            now = time.monotonic()
            wait = 5.0
            conn = self._conn
            if conn is not None and conn.alive and not conn.closing:
                due: list[int] = []
                for lid, lease in conn.leases.items():
                    if not lease.needs_heartbeat:
                        continue
                    if lease.next_heartbeat <= now:
                        due.append(lid)
                        lease.next_heartbeat = now + heartbeat_interval(lease.job)
                    wait = min(wait, lease.next_heartbeat - now)
                if due:
                    conn.out.put_nowait(heartbeat(due))
            try:
                await asyncio.wait_for(self._hb_wake.wait(), max(wait, 0.005))
            except asyncio.TimeoutError:
                pass
