"""The blocking taskhive worker: handlers run in a thread pool, fed by one bidirectional stream."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Optional, Sequence, Tuple

import grpc

from taskhive._types import Fail, HandlerResult, Job, Outcome, default_addr
from taskhive._worker_common import (
    FATAL_CODES,
    WORKER_CHANNEL_OPTIONS,
    Backoff,
    Lease,
    default_worker_name,
    heartbeat_interval,
    heartbeat,
    hello,
    release,
    settle,
)
from taskhive._channel import RootCertificates, default_token, sync_channel
from taskhive._otel import job_span
from taskhive.errors import from_rpc_error
from taskhive.v1 import scheduler_pb2 as pb
from taskhive.v1 import scheduler_pb2_grpc as pb_grpc

__all__ = ["AckCallback", "Handler", "Worker"]

log = logging.getLogger("taskhive.worker")

#: A job handler: returns Done / Fail / SchedLater, bytes or str (done with that result) or None
#: (done); raising an exception fails the attempt with the exception's text (and retries).
Handler = Callable[[Job], HandlerResult]
#: Called once the server answered a job's outcome: ``error`` is None when it was applied,
#: else why it was rejected (e.g. the lease had expired).
AckCallback = Callable[[Job, Outcome, Optional[str]], None]

_CLOSE = object()
_tls = threading.local()


class _Conn:
    """One Work stream and what was handed out on it."""

    def __init__(self) -> None:
        self.out: "queue.Queue[object]" = queue.Queue()
        self.call: Optional[grpc.Future] = None
        self.leases: dict[int, Lease] = {}
        self.running = 0
        self.closing = False
        self.alive = True
        self.welcomed = False

    def requests(self, first: pb.WorkerMessage) -> Iterator[pb.WorkerMessage]:
        yield first
        while True:
            m = self.out.get()
            if m is _CLOSE:
                return
            yield m  # type: ignore[misc]


class Worker:
    """Runs job handlers for the tasks registered with :meth:`task`.

    >>> w = Worker("127.0.0.1:5000", capacity=4)
    >>> @w.task("random_print")
    ... def random_print(job):
    ...     print(job.run_count, job.name)
    ...     return SchedLater(5) if job.run_count < 10 else Done()
    >>> w.run()   # blocks; w.stop() from another thread (or a signal handler) ends it

    ``capacity`` is how many jobs run at once: the server hands out at most that many and the
    handlers run in a thread pool of that size. Long jobs are kept alive with heartbeats
    (every third of their timeout). When the stream breaks the worker reconnects with
    exponential backoff (``reconnect_min`` to ``reconnect_max`` seconds); jobs it held go back
    to the server's queue at once. ``on_ack`` is called (in the worker's reader thread) with
    each job, its outcome and the server's rejection reason (None = applied).

    When the server cancels a running job (removed while running, or given up by its cluster
    node), ``job.cancelled`` is set (with its ``reason``): the handler should check it and
    return once its work is stopped. Its outcome is not applied; when it returns, the worker
    reports the lease, which the server refuses as expected and which frees the slot.
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
        channel: Optional[grpc.Channel] = None,
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
        self._own_channel = channel is None
        self._channel_options = list(options or WORKER_CHANNEL_OPTIONS)
        self._channel = channel
        self._token = default_token(token)
        self._root_certificates = root_certificates
        self._backoff = Backoff(reconnect_min, reconnect_max)
        self._lock = threading.RLock()
        self._conn: Optional[_Conn] = None
        self._stopping = False
        self._forced = False
        self._stop_event = threading.Event()
        self._connected = threading.Event()
        self._done = threading.Event()
        self._started = False
        self._hb_wake = threading.Event()
        self._pool: Optional[ThreadPoolExecutor] = None
        self._thread: Optional[threading.Thread] = None
        self._run_thread: Optional[int] = None
        self.worker_id: Optional[str] = None
        #: The exception that ended :meth:`run` in a background thread (:meth:`start`), if any.
        self.error: Optional[BaseException] = None

    # -- registration ------------------------------------------------------------------------

    def task(self, name: str) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for task ``name``."""

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

    def wait_connected(self, timeout: Optional[float] = None) -> bool:
        """Waits until the server welcomed this worker on a stream; False on timeout."""
        return self._connected.wait(timeout)

    def start(self) -> threading.Thread:
        """Runs :meth:`run` in a daemon thread and returns it (see :attr:`error`)."""

        def target() -> None:
            try:
                self.run()
            except BaseException as e:  # noqa: BLE001 - kept for the caller
                self.error = e
                log.error("worker stopped: %s", e)

        t = threading.Thread(target=target, name=f"taskhive-worker-{self.name}", daemon=True)
        self._thread = t
        t.start()
        return t

    def run(self) -> None:
        """Connects and runs jobs until :meth:`stop`; reconnects when the stream breaks.

        For a graceful end on SIGTERM/SIGINT install a handler that calls :meth:`stop`;
        a bare KeyboardInterrupt ends the worker at once (the server re-queues its jobs).

        :raises TaskhiveError: the server refused the worker (e.g. INVALID_ARGUMENT for a bad
            task name); a broken connection is retried instead.
        """
        if not self._handlers:
            raise ValueError("no task registered: use @worker.task(name)")
        if self._started:
            raise RuntimeError("a Worker runs once")
        self._started = True
        self._run_thread = threading.get_ident()
        channel = self._channel or sync_channel(
            self.addr,
            token=self._token,
            root_certificates=self._root_certificates,
            options=self._channel_options,
        )
        stub = pb_grpc.SchedulerStub(channel)
        self._pool = ThreadPoolExecutor(self.capacity, thread_name_prefix="taskhive-handler")
        hb = threading.Thread(target=self._heartbeats, name="taskhive-heartbeat", daemon=True)
        hb.start()
        try:
            while not self._stopping:
                conn = self._open(stub)
                try:
                    self._read(conn)
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
                self._stop_event.wait(delay)
        finally:
            self._stopping = True
            self._hb_wake.set()
            # A graceful stop waits for the handlers; a forced one leaves them behind.
            self._pool.shutdown(wait=not self._forced, cancel_futures=True)
            if self._own_channel:
                channel.close()
            self._done.set()

    def stop(self, timeout: Optional[float] = None) -> bool:
        """Stops gracefully: takes no new jobs, lets running handlers finish and report, closes.

        Waits up to ``timeout`` seconds (None = no limit) for that; past it the stream is
        cancelled (the server puts the unreported jobs back in its queue). Returns True when
        the worker stopped gracefully in time. Called from a handler, or from a signal
        handler interrupting :meth:`run` (``signal.signal(SIGTERM, lambda *_: w.stop())``),
        it does not wait: :meth:`run` returns once the stop completed.
        The worker first pauses itself (a hello with capacity 0), so the server pushes it no
        more jobs while it drains; one already on its way when the stop began is not started
        and returns to the queue when the stream closes (the server counts that as a failed
        attempt, ``last_error`` "worker lost").
        """
        with self._lock:
            self._stopping = True
            conn = self._conn
            if conn is not None:
                if conn.alive and not conn.closing:
                    conn.out.put(hello([], 0, self.name))
                self._maybe_finish(conn)
        self._stop_event.set()
        self._hb_wake.set()
        if (
            not self._started
            or getattr(_tls, "worker", None) is self  # from a handler
            or threading.get_ident() == self._run_thread  # from a signal handler during run()
        ):
            return True
        if self._done.wait(timeout):
            return not self._forced
        with self._lock:
            self._forced = True
            conn = self._conn
        if conn is not None and conn.call is not None:
            conn.call.cancel()
        self._done.wait(5.0)
        return False

    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits until :meth:`run` returned; False on timeout."""
        return self._done.wait(timeout)

    # -- stream ------------------------------------------------------------------------------

    def _open(self, stub: pb_grpc.SchedulerStub) -> _Conn:
        conn = _Conn()
        first = hello(self.tasks, self.capacity, self.name)
        with self._lock:
            self._conn = conn
            conn.call = stub.Work(conn.requests(first))
            if self._stopping:
                self._maybe_finish(conn)
        return conn

    def _read(self, conn: _Conn) -> None:
        for msg in conn.call:  # type: ignore[union-attr]
            kind = msg.WhichOneof("msg")
            if kind == "job":
                self._on_job(conn, Job.from_proto(msg.job))
            elif kind == "ack":
                self._on_ack(conn, msg.ack.lease_id, msg.ack.error)
            elif kind == "cancel":
                self._on_cancel(conn, msg.cancel)
            elif kind == "heartbeat":
                with self._lock:
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
        with self._lock:
            conn.alive = False
            self._connected.clear()
            if self._conn is conn:
                self._conn = None
            # Handlers still running on this stream report nowhere: the server re-queued them.
            conn.leases = {lid: l for lid, l in conn.leases.items() if l.started and l.outcome is None}
        conn.out.put(_CLOSE)  # ends the request iterator (and gRPC's thread consuming it)

    def _on_job(self, conn: _Conn, job: Job) -> None:
        lease = Lease.of(job)
        with self._lock:
            conn.leases[job.lease_id] = lease
            if self._stopping:
                log.info("stopping: not starting job %s/%s", job.task, job.name)
                return
            lease.started = True
            conn.running += 1
        self._hb_wake.set()
        assert self._pool is not None
        self._pool.submit(self._execute, conn, lease)

    def _on_cancel(self, conn: _Conn, cancel: pb.CancelJob) -> None:
        with self._lock:
            lease = conn.leases.get(cancel.lease_id)
            if lease is None or lease.revoked:
                return
            lease.revoked = True
            job = lease.job
            log.info("job %s/%s cancelled by the server: %s", job.task, job.name, cancel.reason)
            job.cancelled._set(cancel.reason)
            if not lease.started and lease.outcome is None and conn.alive:
                # Never started (the worker is stopping): release the lease at once.
                lease.outcome, msg = release(job.lease_id, cancel.reason)
                conn.out.put(msg)

    def _execute(self, conn: _Conn, lease: Lease) -> None:
        job = lease.job
        value: object = None
        exc: Optional[BaseException] = None
        _tls.worker = self
        try:
            handler = self._handlers.get(job.task)
            if handler is None:
                value = Fail(f"no handler for task {job.task}")
            else:
                with job_span(job):
                    value = handler(job)
        except BaseException as e:  # noqa: BLE001 - a handler's failure is the job's failure
            log.debug("job %s/%s failed", job.task, job.name, exc_info=True)
            exc = e
        finally:
            _tls.worker = None
        outcome, msg = settle(job, value, exc)
        with self._lock:
            conn.running -= 1
            if lease.revoked:
                # Not applied: the report only frees the slot (the server refuses it).
                outcome, msg = release(job.lease_id, job.cancelled.reason or "")
            lease.outcome = outcome
            if conn.alive:
                conn.out.put(msg)
            else:
                conn.leases.pop(job.lease_id, None)
                log.warning("job %s/%s finished after its stream was lost; outcome dropped", job.task, job.name)
            self._maybe_finish(conn)

    def _on_ack(self, conn: _Conn, lease_id: int, error: str) -> None:
        with self._lock:
            lease = conn.leases.pop(lease_id, None)
        if lease is None or lease.outcome is None:
            return
        if error and lease.revoked:
            log.debug("report of cancelled job %s/%s refused: %s", lease.job.task, lease.job.name, error)
        elif error:
            log.warning("outcome of job %s/%s rejected: %s", lease.job.task, lease.job.name, error)
        if self.on_ack is not None:
            try:
                self.on_ack(lease.job, lease.outcome, error or None)
            except Exception:  # noqa: BLE001
                log.exception("on_ack callback failed")

    def _maybe_finish(self, conn: _Conn) -> None:
        """Half-closes the stream once stopping and no handler of it runs (lock held)."""
        if self._stopping and conn.running == 0 and not conn.closing:
            conn.closing = True
            conn.out.put(_CLOSE)

    def _heartbeats(self) -> None:
        while not self._done.is_set():
            self._hb_wake.clear()
            now = time.monotonic()
            wait = 5.0
            with self._lock:
                conn = self._conn
                due: list[int] = []
                if conn is not None and conn.alive and not conn.closing:
                    for lid, lease in conn.leases.items():
                        if not lease.needs_heartbeat:
                            continue
                        if lease.next_heartbeat <= now:
                            due.append(lid)
                            lease.next_heartbeat = now + heartbeat_interval(lease.job)
                        wait = min(wait, lease.next_heartbeat - now)
                    if due:
                        conn.out.put(heartbeat(due))
                if self._stopping and (conn is None or conn.closing):
                    wait = min(wait, 0.5)
            self._hb_wake.wait(max(wait, 0.005))
