"""The blocking Client and Worker against a real server."""

from __future__ import annotations

import datetime as dt
import queue
import signal
import threading
import time
from typing import Optional

import pytest

import taskhive
from taskhive import Done, Fail, JobState, RetryPolicy, SchedLater
from support import DEADLINE, Acks, WorkerProcess, get, running, wait

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.05, backoff_max=0.2)


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for you")


@pytest.fixture
def client(server):
    with taskhive.Client(server.addr) as c:
        yield c


def test_submit_then_worker_done(server, client):
    seen: "queue.Queue[taskhive.Job]" = queue.Queue()
    acks = Acks()
    w = taskhive.Worker(server.addr, on_ack=acks)

    @w.task("greet")
    def greet(job: taskhive.Job) -> Done:
        seen.put(job)
        return Done(b"hi " + job.args)

    job_id = client.submit("greet", "j1", b"bob", priority=3, timeout=30)
    assert client.get("greet", "j1").state == JobState.PENDING
    with running(w):
        job = get(seen, "the job")
        assert (job.id, job.task, job.name, job.args) == (job_id, "greet", "j1", b"bob")
        assert (job.run_count, job.attempts, job.priority, job.timeout_ms) == (0, 0, 3, 30_000)
        assert job.lease_id != 0 and job.state == JobState.RUNNING
        acked, outcome, error = acks.next("the done ack")
        assert (acked.id, outcome, error) == (job_id, Done(b"hi bob"), None)
        # Acknowledged means applied and committed: the job is gone.
        with pytest.raises(taskhive.NotFoundError):
            client.get("greet", "j1")
        assert client.status()["greet"].workers == 1


def test_sched_later_repeats_with_growing_count(server, client):
    counts: "queue.Queue[int]" = queue.Queue()
    acks = Acks()
    w = taskhive.Worker(server.addr, on_ack=acks)

    @w.task("repeat")
    def repeat(job: taskhive.Job) -> taskhive.Outcome:
        counts.put(job.run_count)
        return SchedLater(0.05) if job.run_count < 3 else Done()

    client.submit("repeat", "r")
    with running(w):
        assert [get(counts, f"run {i}") for i in range(4)] == [0, 1, 2, 3]
        for i in range(3):
            job, outcome, error = acks.next(f"sched_later ack {i}")
            assert (outcome, error) == (SchedLater(0.05), None)
        job, outcome, error = acks.next("done ack")
        assert (job.run_count, outcome, error) == (3, Done(), None)
        with pytest.raises(taskhive.NotFoundError):
            client.get("repeat", "r")


def test_fail_retries_then_dead_set(server, client):
    attempts: "queue.Queue[int]" = queue.Queue()
    acks = Acks()
    healthy = threading.Event()
    w = taskhive.Worker(server.addr, on_ack=acks)

    @w.task("flaky")
    def flaky(job: taskhive.Job) -> taskhive.Outcome:
        attempts.put(job.attempts)
        if job.name == "fatal":
            return Fail("bad input", retry=False)
        if not healthy.is_set():
            raise ValueError(f"attempt {job.attempts} broke")
        return Done()

    job_id = client.submit("flaky", "f", retry=FAST_RETRY)
    with running(w):
        assert [get(attempts, f"attempt {i}") for i in range(3)] == [0, 1, 2]
        for i in range(3):
            _, outcome, error = acks.next(f"fail ack {i}")
            assert error is None
            assert outcome == Fail(f"ValueError: attempt {i} broke")
        # The third failure was the last allowed: the job is dead, not retried.
        st = client.status("flaky")["flaky"]
        assert (st.dead, st.pending, st.scheduled, st.running) == (1, 0, 0, 0)
        [dead] = client.list_dead("flaky")
        assert (dead.id, dead.state, dead.attempts) == (job_id, JobState.DEAD, 3)
        assert dead.last_error == "ValueError: attempt 2 broke"
        assert dead.retry == FAST_RETRY
        assert client.get(job_id=job_id).state == JobState.DEAD

        # RetryDead puts it back with attempts reset; now it succeeds.
        healthy.set()
        assert client.retry_dead("flaky") == 1
        assert get(attempts, "the retried run") == 0
        assert acks.next("done ack")[1:] == (Done(), None)
        assert client.list_dead() == []

        # Fail(retry=False) goes straight to the dead set; purge deletes it.
        client.submit("flaky", "fatal", retry=FAST_RETRY)
        assert get(attempts, "the fatal run") == 0
        assert acks.next("fatal ack")[1:] == (Fail("bad input", retry=False), None)
        assert [j.name for j in client.list_dead()] == ["fatal"]
        assert client.purge_dead("flaky", "fatal") == 1
        assert client.status().totals.dead == 0


def test_run_job(server, client):
    with pytest.raises(taskhive.NoWorkerError) as e:
        client.run_job("echo", "nobody", b"x", wait=DEADLINE)
    assert e.value.code.name == "FAILED_PRECONDITION"
    assert "no worker for task echo" in str(e.value)

    w = taskhive.Worker(server.addr, capacity=2)

    @w.task("echo")
    def echo(job: taskhive.Job) -> object:
        if job.args == b"boom":
            raise RuntimeError("kaput")
        if job.args == b"odd":
            return 42  # not an outcome
        if job.args == b"bad":
            return Fail(error=42)  # type: ignore[arg-type] - cannot be encoded
        if job.args == b"mute":
            raise Unprintable()
        return job.args[::-1]

    with running(w):
        assert client.run_job("echo", "a", b"abc", wait=DEADLINE) == b"cba"
        assert client.run_job("echo", "b", "text", wait=DEADLINE) == b"txet"
        with pytest.raises(taskhive.JobFailedError, match="RuntimeError: kaput"):
            client.run_job("echo", "c", b"boom", wait=DEADLINE)
        # Bad return values and exceptions that cannot even print still fail the job cleanly.
        with pytest.raises(taskhive.JobFailedError, match="must return Done, Fail"):
            client.run_job("echo", "d", b"odd", wait=DEADLINE)
        with pytest.raises(taskhive.JobFailedError, match="invalid outcome from the handler"):
            client.run_job("echo", "e", b"bad", wait=DEADLINE)
        with pytest.raises(taskhive.JobFailedError, match="job failed: Unprintable$"):
            client.run_job("echo", "f", b"mute", wait=DEADLINE)
        # Without a retry policy a failed run_job is not retried: it is dead.
        assert sorted(j.name for j in client.list_dead("echo")) == ["c", "d", "e", "f"]


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_killed_worker_job_is_redelivered(server, client, flavour):
    job_id = client.submit("hold", "precious", b"data")
    victim = WorkerProcess(server.addr, "hold", flavour)
    try:
        assert victim.started() == f"started {job_id} 0"
        assert client.get(job_id=job_id).state == JobState.RUNNING
    finally:
        victim.kill()  # SIGKILL while it holds the job

    seen: "queue.Queue[taskhive.Job]" = queue.Queue()
    acks = Acks()
    w = taskhive.Worker(server.addr, on_ack=acks)

    @w.task("hold")
    def hold(job: taskhive.Job) -> None:
        seen.put(job)

    with running(w):
        job = get(seen, "the redelivered job")
        assert (job.id, job.args) == (job_id, b"data")
        assert job.attempts == 1  # the lost worker counted as a failed attempt
        assert job.last_error == "worker lost"
        assert acks.next()[2] is None
        with pytest.raises(taskhive.NotFoundError):
            client.get(job_id=job_id)


@pytest.mark.parametrize("flavour", ["sync", "aio"])
def test_sigterm_stops_worker_gracefully(server, client, flavour):
    """A worker whose signal handler calls stop(): the running job finishes and reports."""
    proc = WorkerProcess(server.addr, "term", f"{flavour}-term")
    try:
        proc.expect("connected")
        job_id = client.submit("term", "t1")
        assert proc.started() == f"started {job_id} 0"
        proc.proc.send_signal(signal.SIGTERM)
        proc.send("graceful")  # the handler finishes only now, after the signal
        proc.expect("stopped")
        assert proc.proc.wait(DEADLINE) == 0
    finally:
        proc.kill()
    # Done was reported and committed before the worker closed its stream.
    with pytest.raises(taskhive.NotFoundError):
        client.get(job_id=job_id)
    assert client.status().totals.workers == 0


def test_capacity_is_respected(server, client):
    capacity, jobs = 3, 8
    lock = threading.Lock()
    running_now = 0
    peak = 0
    full = threading.Event()
    gate = threading.Event()
    acks = Acks()
    w = taskhive.Worker(server.addr, capacity=capacity, on_ack=acks)

    @w.task("slow")
    def slow(job: taskhive.Job) -> None:
        nonlocal running_now, peak
        with lock:
            running_now += 1
            peak = max(peak, running_now)
            if running_now == capacity:
                full.set()
        try:
            wait(gate, "the gate")
        finally:
            with lock:
                running_now -= 1

    for i in range(jobs):
        client.submit("slow", f"s{i}")
    with running(w):
        wait(full, f"{capacity} handlers running at once")
        # The server handed out exactly `capacity` jobs; the others wait for a free slot.
        st = client.status("slow")["slow"]
        assert (st.running, st.pending) == (capacity, jobs - capacity)
        with lock:
            assert running_now == capacity
        gate.set()
        for i in range(jobs):
            assert acks.next(f"ack {i}")[2] is None
        assert peak == capacity
        assert client.status().totals.running == 0


def test_graceful_stop_finishes_running_job(server, client):
    started = threading.Event()
    gate = threading.Event()
    names: "queue.Queue[str]" = queue.Queue()
    acks = Acks()
    w = taskhive.Worker(server.addr, capacity=1, on_ack=acks)

    @w.task("long")
    def long(job: taskhive.Job) -> bytes:
        names.put(job.name)
        started.set()
        wait(gate, "the gate")
        return b"finished"

    w.start()
    assert w.wait_connected(DEADLINE)
    client.submit("long", "first")
    wait(started, "the first job to start")
    stopped: "queue.Queue[bool]" = queue.Queue()
    stopper = threading.Thread(target=lambda: stopped.put(w.stop(DEADLINE)))
    stopper.start()
    # The worker is stopping: a job submitted now must not be started by it.
    client.submit("long", "second")
    assert stopped.empty(), "stop() returned while a handler was still running"
    gate.set()
    assert get(stopped, "stop() to return") is True
    assert w.join(0) and w.error is None
    job, outcome, error = acks.next("the first job's ack")
    assert (job.name, outcome, error) == ("first", Done(b"finished"), None)
    assert names.get_nowait() == "first" and names.empty()
    with pytest.raises(taskhive.NotFoundError):
        client.get("long", "first")

    # The second job is still there for another worker.
    w2 = taskhive.Worker(server.addr, on_ack=acks)
    w2.add_task("long", lambda job: names.put(job.name))
    with running(w2):
        assert get(names, "the second job") == "second"
        assert acks.next("the second job's ack")[2] is None


def test_heartbeats_keep_long_job_leased(server, client):
    acks = Acks()
    runs: "queue.Queue[taskhive.Job]" = queue.Queue()
    w = taskhive.Worker(server.addr, capacity=2, on_ack=acks)

    @w.task("marathon")
    def marathon(job: taskhive.Job) -> None:
        runs.put(job)
        time.sleep(1.5)  # the work: three times the lease

    client.submit("marathon", "m", timeout=0.5)
    with running(w):
        job, outcome, error = acks.next("the ack")
        # Without heartbeats the lease would have expired (and the job been handed out again).
        assert (outcome, error) == (Done(), None)
        assert get(runs, "the run").attempts == 0
        assert runs.empty()


def test_worker_reconnects_after_server_restart(server, client):
    seen: "queue.Queue[str]" = queue.Queue()
    acks = Acks()
    w = taskhive.Worker(server.addr, reconnect_min=0.05, reconnect_max=0.5, on_ack=acks)
    w.add_task("phoenix", lambda job: seen.put(job.name))
    with running(w):
        client.submit("phoenix", "before")
        assert get(seen, "the job before the restart") == "before"
        assert acks.next()[2] is None  # committed: it will not come back after the restart
        server.restart()
        with taskhive.Client(server.addr) as c2:
            c2.submit("phoenix", "after")
        assert get(seen, "the job after the restart") == "after"


def test_client_operations(server, client):
    with pytest.raises(taskhive.InvalidArgumentError, match="task"):
        client.submit("", "x")
    with pytest.raises(taskhive.InvalidArgumentError, match="timeout_ms"):
        client.submit("t", "x", timeout=0)
    with pytest.raises(ValueError):
        client.submit("t", "x", delay=1, sched_at=time.time())

    a = client.submit("t", "a", delay=3600)
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    b = client.submit("t", "b", sched_at=when)
    c = client.submit("t", "c", sched_at=time.time() + 7200, priority=9)
    assert len({a, b, c}) == 3
    assert client.submit("t", "a", b"new args", delay=3600) == a  # replaced, same id
    ja = client.get("t", "a")
    assert (ja.state, ja.args) == (JobState.SCHEDULED, b"new args")
    assert abs(client.get(job_id=b).sched_at_ms - int(when.timestamp() * 1000)) <= 1
    st = client.status()
    assert (st["t"].scheduled, st["t"].pending, st.totals.scheduled) == (3, 0, 3)
    assert st["t"].next_sched_at_ms == ja.sched_at_ms

    backup = sorted(client.dump(), key=lambda j: j.id)
    assert [j.name for j in backup] == ["a", "b", "c"]
    assert client.remove("t", "a") == a
    assert client.remove(job_id=b) == b
    with pytest.raises(taskhive.NotFoundError):
        client.remove("t", "a")
    assert client.drop("t") == 1
    assert client.status().tasks == {}
    assert client.load(backup) == 3
    assert client.get("t", "c").priority == 9

    w = taskhive.Worker(server.addr)
    w.add_task("t", lambda job: None)
    with running(w):
        with pytest.raises(taskhive.FailedPreconditionError):
            client.drop("t")


def test_refused_worker_raises_instead_of_reconnecting(server):
    w = taskhive.Worker(server.addr, reconnect_min=0.01)
    w.add_task("x" * 256, lambda job: None)  # task names are 1..255 bytes
    with pytest.raises(taskhive.InvalidArgumentError, match="tasks"):
        w.run()


def test_submit_many_commits_all_or_rejects_all(client):
    ids = client.submit_many(
        [
            {"task": "batch", "name": "a", "args": b"1"},
            {"task": "batch", "name": "b", "args": "2", "delay": 60},
            {"task": "batch", "name": "c", "priority": 5},
        ]
    )
    assert len(set(ids)) == 3
    assert client.get("batch", "a").args == b"1"
    assert client.get("batch", "b").state == JobState.SCHEDULED
    assert client.get(job_id=ids[2]).priority == 5
    # One bad job fails the call, names the job and the field, and submits none.
    with pytest.raises(taskhive.InvalidArgumentError, match=r"jobs: \[1\]\.name"):
        client.submit_many([{"task": "batch", "name": "d"}, {"task": "batch", "name": ""}])
    with pytest.raises(taskhive.NotFoundError):
        client.get("batch", "d")


def test_submit_stream_acks_each_job_in_order_and_goes_on_past_a_bad_one(client):
    jobs = [{"task": "stream", "name": f"s{i}", "args": f"{i}"} for i in range(2000)]
    jobs[700]["name"] = ""
    acks = list(client.submit_stream(iter(jobs)))
    assert [a.seq for a in acks] == list(range(2000))
    bad = acks[700]
    assert isinstance(bad.error, taskhive.InvalidArgumentError) and not bad.ok
    assert bad.error.details.startswith("name:") and bad.job_id == 0
    ok = [a for a in acks if a.ok]
    assert len(ok) == 1999 and len({a.job_id for a in ok}) == 1999
    assert client.get("stream", "s1999").args == b"1999"
    assert client.status()["stream"].pending == 1999
    # Resubmitting replaces, keeping the id, as submit does.
    again = list(client.submit_stream([{"task": "stream", "name": "s5", "args": b"new"}]))
    assert (again[0].job_id, again[0].replaced) == (acks[5].job_id, True)
    # A job the client cannot build ends the stream after the acks of the ones before it.
    seen = []
    with pytest.raises(ValueError, match="sched_at or delay"):
        for a in client.submit_stream(
            [{"task": "stream", "name": "x1"}, {"task": "stream", "name": "x2", "delay": 1, "sched_at": 5}]
        ):
            seen.append(a)
    assert [a.seq for a in seen] == [0] and seen[0].ok


def test_removing_a_running_job_sets_its_cancelled_flag(server, client):
    started: "queue.Queue[str]" = queue.Queue()
    seen: "queue.Queue[tuple[bool, Optional[str]]]" = queue.Queue()
    acks = Acks()
    # Capacity 1: the next job runs only once the cancelled one freed its slot.
    w = taskhive.Worker(server.addr, on_ack=acks)

    @w.task("long")
    def long(job: taskhive.Job) -> Done:
        started.put(job.name)
        if job.name == "next":
            return Done()
        deadline = time.monotonic() + DEADLINE
        while not job.cancelled.wait(0.05) and time.monotonic() < deadline:
            pass
        seen.put((job.is_cancelled(), job.cancelled.reason))
        return Done(b"not applied")

    with running(w):
        job_id = client.submit("long", "first")
        assert get(started, "the first job") == "first"
        client.remove("long", "first")
        cancelled, reason = get(seen, "the handler to see the cancel")
        assert cancelled and reason
        job, outcome, error = acks.next("the cancelled job's ack")
        # The handler's outcome is not applied; the lease's release is refused, as expected.
        assert job.id == job_id and job.is_cancelled() and error
        assert outcome != Done(b"not applied")
        client.submit("long", "next")
        assert get(started, "the next job") == "next"
        job, outcome, error = acks.next("the next job's ack")
        assert (job.name, outcome, error) == ("next", Done(), None)
        with pytest.raises(taskhive.NotFoundError):
            client.get("long", "first")


def test_cancellation_is_a_flag_outside_job_equality():
    a = taskhive.Job(id=1, task="t", name="n")
    b = taskhive.Job(id=1, task="t", name="n")
    assert a == b and hash(a) == hash(b)
    assert not a.is_cancelled() and a.cancelled.reason is None and a.cancelled.wait(0) is False
    a.cancelled._set("job removed")
    a.cancelled._set("a later reason")  # the first one stays
    assert a.is_cancelled() and a.cancelled.wait(0) and a.cancelled.reason == "job removed"
    assert a == b and not b.is_cancelled()
    assert "cancelled" not in repr(a) and repr(a.cancelled) == "Cancellation(reason='job removed')"


def test_errors_follow_the_servers_reason_not_the_message(server, client):
    import grpc

    from taskhive.errors import from_rpc_error
    from taskhive.v1 import scheduler_pb2 as pb
    from taskhive.v1 import scheduler_pb2_grpc as pb_grpc

    # No worker: the reason, whatever the call.
    with pytest.raises(taskhive.NoWorkerError) as e:
        client.run_job("why", "x", wait=DEADLINE)
    assert (e.value.reason, e.value.metadata["task"]) == ("NO_WORKER", "why")

    # Stale lease: a result for a lease the server never handed out.
    with grpc.insecure_channel(server.addr) as ch:
        with pytest.raises(grpc.RpcError) as raw:
            pb_grpc.SchedulerStub(ch).ReportResult(
                pb.ReportResultRequest(lease_id=77, outcome=pb.Outcome(done=pb.Done()))
            )
    err = from_rpc_error(raw.value)
    assert isinstance(err, taskhive.StaleLeaseError) and isinstance(err, taskhive.FailedPreconditionError)
    assert (err.reason, err.metadata["lease"], err.metadata["cause"]) == ("STALE_LEASE", "77", "ended")

    # Workers present.
    w = taskhive.Worker(server.addr)
    w.add_task("why", lambda job: None)
    with running(w):
        with pytest.raises(taskhive.WorkersPresentError) as e:
            client.drop("why")
    assert e.value.reason == "WORKERS_PRESENT" and not isinstance(e.value, taskhive.NoWorkerError)

    # Other refusals carry their reason too; a code without one gets the code's name.
    with pytest.raises(taskhive.InvalidArgumentError) as e:
        client.submit("", "x")
    assert (e.value.reason, e.value.metadata) == ("INVALID_ARGUMENT", {"field": "task"})
    assert taskhive.errors.from_code_name("UNAVAILABLE", "down").reason == "UNAVAILABLE"


def test_schedules_fire_pause_resume_and_refuse_bad_expressions(client):
    with pytest.raises(taskhive.InvalidArgumentError, match="cron"):
        client.create_schedule("bad", "61 * * * *", "cron")
    with pytest.raises(taskhive.InvalidArgumentError, match="tz"):
        client.create_schedule("bad", "* * * * *", "cron", tz="Mars/Olympus")
    assert client.list_schedules() == []
    s = client.create_schedule("tick", "* * * * * *", "cron", b"x", missed="one")
    assert (s.name, s.missed, s.paused, len(s.next_fire_ms)) == ("tick", "one", False, 5)
    deadline = time.monotonic() + DEADLINE
    while not client.get_schedule("tick").last_job:
        assert time.monotonic() < deadline, "no tick fired"
        time.sleep(0.1)
    last = client.get_schedule("tick")
    assert last.last_job.startswith("tick@") and last.last_job_id > 0
    assert client.get("cron", last.last_job).args == b"x"
    assert client.pause_schedule("tick").paused
    assert not client.resume_schedule("tick").paused
    assert [x.name for x in client.list_schedules()] == ["tick"]
    client.delete_schedule("tick")
    with pytest.raises(taskhive.NotFoundError):
        client.get_schedule("tick")


def test_a_paused_task_keeps_its_jobs_until_resumed(server, client):
    st = client.pause_task("held")
    assert st.paused
    client.submit("held", "a")
    assert client.status("held")["held"].paused
    assert client.status("held")["held"].pending == 1
    st = client.resume_task("held")
    assert not st.paused


def test_a_done_job_is_kept_with_its_result(tmp_path):
    from conftest import Server

    srv = Server(tmp_path / "data", tmp_path / "server.log", extra=["--keep-results", "1h"])
    srv.start()
    try:
        with taskhive.Client(srv.addr) as client:
            acks = Acks()
            w = taskhive.Worker(srv.addr, on_ack=acks)

            @w.task("kept")
            def kept(job: taskhive.Job) -> Done:
                return Done(b"hi " + job.args)

            job_id = client.submit("kept", "k1", b"bob")
            with running(w):
                acks.next("the done ack")
                j = client.get("kept", "k1")
                assert (j.id, j.state, j.result) == (job_id, JobState.DONE, b"hi bob")
                assert j.finished_at_ms > 0
    finally:
        srv.kill()
