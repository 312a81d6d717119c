"""The asyncio Client and Worker (taskhive.aio) against a real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Optional

import pytest

from taskhive import aio
from taskhive.aio import Done, Fail, JobState, RetryPolicy, SchedLater
from support import DEADLINE, AioAcks, WorkerProcess, aget, arunning, await_event, run_async

FAST_RETRY = RetryPolicy(max_attempts=3, backoff_base=0.05, backoff_max=0.2)


@run_async
async def test_submit_then_worker_done(server):
    seen: "asyncio.Queue[aio.Job]" = asyncio.Queue()
    acks = AioAcks()
    w = aio.Worker(server.addr, on_ack=acks)

    @w.task("greet")
    async def greet(job: aio.Job) -> Done:
        await seen.put(job)
        return Done(b"hi " + job.args)

    async with aio.Client(server.addr) as client:
        job_id = await client.submit("greet", "j1", b"bob", priority=3, timeout=30)
        assert (await client.get("greet", "j1")).state == JobState.PENDING
        async with arunning(w):
            job = await aget(seen, "the job")
            assert (job.id, job.task, job.name, job.args) == (job_id, "greet", "j1", b"bob")
            assert (job.run_count, job.attempts, job.priority, job.timeout_ms) == (0, 0, 3, 30_000)
            assert job.lease_id != 0 and job.state == JobState.RUNNING
            acked, outcome, error = await acks.next("the done ack")
            assert (acked.id, outcome, error) == (job_id, Done(b"hi bob"), None)
            with pytest.raises(aio.NotFoundError):
                await client.get("greet", "j1")
            assert (await client.status())["greet"].workers == 1


@run_async
async def test_sched_later_repeats_with_growing_count(server):
    counts: "asyncio.Queue[int]" = asyncio.Queue()
    acks = AioAcks()
    w = aio.Worker(server.addr, on_ack=acks)

    @w.task("repeat")
    async def repeat(job: aio.Job) -> aio.Outcome:
        counts.put_nowait(job.run_count)
        return SchedLater(0.05, count_step=2) if job.run_count < 6 else Done()

    async with aio.Client(server.addr) as client, arunning(w):
        await client.submit("repeat", "r")
        assert [await aget(counts, f"run {i}") for i in range(4)] == [0, 2, 4, 6]
        for i in range(3):
            assert (await acks.next(f"sched_later ack {i}"))[1:] == (SchedLater(0.05, 2), None)
        job, outcome, error = await acks.next("done ack")
        assert (job.run_count, outcome, error) == (6, Done(), None)
        with pytest.raises(aio.NotFoundError):
            await client.get("repeat", "r")


@run_async
async def test_fail_retries_then_dead_set(server):
    attempts: "asyncio.Queue[int]" = asyncio.Queue()
    acks = AioAcks()
    healthy = asyncio.Event()
    w = aio.Worker(server.addr, on_ack=acks)

    @w.task("flaky")
    async def flaky(job: aio.Job) -> aio.Outcome:
        attempts.put_nowait(job.attempts)
        if job.name == "fatal":
            return Fail("bad input", retry=False)
        if not healthy.is_set():
            raise ValueError(f"attempt {job.attempts} broke")
        return Done()

    async with aio.Client(server.addr) as client, arunning(w):
        job_id = await client.submit("flaky", "f", retry=FAST_RETRY)
        assert [await aget(attempts, f"attempt {i}") for i in range(3)] == [0, 1, 2]
        for i in range(3):
            _, outcome, error = await acks.next(f"fail ack {i}")
            assert (outcome, error) == (Fail(f"ValueError: attempt {i} broke"), None)
        st = (await client.status("flaky"))["flaky"]
        assert (st.dead, st.pending, st.scheduled, st.running) == (1, 0, 0, 0)
        [dead] = await client.list_dead("flaky")
        assert (dead.id, dead.state, dead.attempts) == (job_id, JobState.DEAD, 3)
        assert dead.last_error == "ValueError: attempt 2 broke"

        healthy.set()
        assert await client.retry_dead("flaky", "f") == 1
        assert await aget(attempts, "the retried run") == 0
        assert (await acks.next("done ack"))[1:] == (Done(), None)
        assert await client.list_dead() == []

        await client.submit("flaky", "fatal", retry=FAST_RETRY)
        assert await aget(attempts, "the fatal run") == 0
        assert (await acks.next("fatal ack"))[1:] == (Fail("bad input", retry=False), None)
        assert [j.name for j in await client.list_dead()] == ["fatal"]
        assert await client.purge_dead() == 1
        assert (await client.status()).totals.dead == 0


@run_async
async def test_run_job(server):
    async with aio.Client(server.addr) as client:
        with pytest.raises(aio.NoWorkerError, match="no worker for task echo"):
            await client.run_job("echo", "nobody", b"x", wait=DEADLINE)

        w = aio.Worker(server.addr, capacity=2)

        @w.task("echo")
        async def echo(job: aio.Job) -> object:
            if job.args == b"boom":
                raise RuntimeError("kaput")
            if job.args == b"odd":
                return 42  # not an outcome
            if job.args == b"bad":
                return SchedLater(delay="soon")  # type: ignore[arg-type] - cannot be encoded
            return job.args[::-1]

        @w.task("echo-sync")
        def echo_sync(job: aio.Job) -> bytes:  # plain functions run in the worker's threads
            return job.args.upper()

        async with arunning(w):
            assert await client.run_job("echo", "a", b"abc", wait=DEADLINE) == b"cba"
            results = await asyncio.gather(
                *(client.run_job("echo-sync", f"s{i}", f"x{i}", wait=DEADLINE) for i in range(5))
            )
            assert results == [f"X{i}".encode() for i in range(5)]
            with pytest.raises(aio.JobFailedError, match="RuntimeError: kaput"):
                await client.run_job("echo", "c", b"boom", wait=DEADLINE)
            with pytest.raises(aio.JobFailedError, match="must return Done, Fail"):
                await client.run_job("echo", "d", b"odd", wait=DEADLINE)
            with pytest.raises(aio.JobFailedError, match="invalid outcome from the handler"):
                await client.run_job("echo", "e", b"bad", wait=DEADLINE)
            with pytest.raises(aio.DeadlineExceededError):
                await client.run_job("echo", "later", delay=60, wait=0.2)


@pytest.mark.parametrize("flavour", ["sync", "aio"])
@run_async
async def test_killed_worker_job_is_redelivered(server, flavour):
    async with aio.Client(server.addr) as client:
        job_id = await client.submit("hold", "precious", b"data")
        victim = WorkerProcess(server.addr, "hold", flavour)
        try:
            # Blocking reads with their own deadline, off the loop.
            assert await asyncio.to_thread(victim.started) == f"started {job_id} 0"
            assert (await client.get(job_id=job_id)).state == JobState.RUNNING
        finally:
            victim.kill()

        seen: "asyncio.Queue[aio.Job]" = asyncio.Queue()
        acks = AioAcks()
        w = aio.Worker(server.addr, on_ack=acks)

        @w.task("hold")
        async def hold(job: aio.Job) -> None:
            seen.put_nowait(job)

        async with arunning(w):
            job = await aget(seen, "the redelivered job")
            assert (job.id, job.args, job.attempts, job.last_error) == (job_id, b"data", 1, "worker lost")
            assert (await acks.next())[2] is None
            with pytest.raises(aio.NotFoundError):
                await client.get(job_id=job_id)


@run_async
async def test_capacity_is_respected(server):
    capacity, jobs = 3, 8
    running_now = 0
    peak = 0
    full = asyncio.Event()
    gate = asyncio.Event()
    acks = AioAcks()
    w = aio.Worker(server.addr, capacity=capacity, on_ack=acks)

    @w.task("slow")
    async def slow(job: aio.Job) -> None:
        nonlocal running_now, peak
        running_now += 1
        peak = max(peak, running_now)
        if running_now == capacity:
            full.set()
        try:
            await await_event(gate, "the gate")
        finally:
            running_now -= 1

    async with aio.Client(server.addr) as client:
        for i in range(jobs):
            await client.submit("slow", f"s{i}")
        async with arunning(w):
            await await_event(full, f"{capacity} handlers running at once")
            st = (await client.status("slow"))["slow"]
            assert (st.running, st.pending) == (capacity, jobs - capacity)
            assert running_now == capacity
            gate.set()
            for i in range(jobs):
                assert (await acks.next(f"ack {i}"))[2] is None
            assert peak == capacity
            assert (await client.status()).totals.running == 0


@run_async
async def test_graceful_stop_finishes_running_job(server):
    started = asyncio.Event()
    gate = asyncio.Event()
    names: list[str] = []
    acks = AioAcks()
    w = aio.Worker(server.addr, capacity=1, on_ack=acks)

    @w.task("long")
    async def long(job: aio.Job) -> bytes:
        names.append(job.name)
        started.set()
        await await_event(gate, "the gate")
        return b"finished"

    async with aio.Client(server.addr) as client:
        run = asyncio.create_task(w.run())
        assert await w.wait_connected(DEADLINE)
        await client.submit("long", "first")
        await await_event(started, "the first job to start")
        stopping = asyncio.create_task(w.stop(DEADLINE))
        await client.submit("long", "second")
        assert not stopping.done(), "stop() returned while a handler was still running"
        gate.set()
        assert await asyncio.wait_for(stopping, DEADLINE) is True
        await asyncio.wait_for(run, DEADLINE)
        job, outcome, error = await acks.next("the first job's ack")
        assert (job.name, outcome, error) == ("first", Done(b"finished"), None)
        assert names == ["first"]
        with pytest.raises(aio.NotFoundError):
            await client.get("long", "first")

        seen: "asyncio.Queue[str]" = asyncio.Queue()
        loop = asyncio.get_running_loop()
        w2 = aio.Worker(server.addr)
        # A plain function runs in the worker's threads: hand the name back to the loop.
        w2.add_task("long", lambda job: loop.call_soon_threadsafe(seen.put_nowait, job.name) and None)
        async with arunning(w2):
            assert await aget(seen, "the second job") == "second"


@run_async
async def test_stop_timeout_cancels_stuck_handler(server):
    started = asyncio.Event()
    cancelled = asyncio.Event()
    w = aio.Worker(server.addr)

    @w.task("stuck")
    async def stuck(job: aio.Job) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with aio.Client(server.addr) as client:
        run = asyncio.create_task(w.run())
        await client.submit("stuck", "s")
        await await_event(started, "the handler to start")
        assert await w.stop(timeout=0.2) is False
        assert cancelled.is_set()
        await asyncio.wait_for(run, DEADLINE)
        # The stream was cancelled: the job is back for someone else.
        seen: "asyncio.Queue[aio.Job]" = asyncio.Queue()
        w2 = aio.Worker(server.addr)
        w2.add_task("stuck", seen.put)
        async with arunning(w2):
            job = await aget(seen, "the job again")
            assert (job.name, job.attempts) == ("s", 1)


@run_async
async def test_heartbeats_keep_long_job_leased(server):
    acks = AioAcks()
    runs: list[aio.Job] = []
    w = aio.Worker(server.addr, capacity=2, on_ack=acks)

    @w.task("marathon")
    async def marathon(job: aio.Job) -> None:
        runs.append(job)
        await asyncio.sleep(1.5)  # the work: three times the lease

    async with aio.Client(server.addr) as client, arunning(w):
        await client.submit("marathon", "m", timeout=0.5)
        _, outcome, error = await acks.next("the ack")
        assert (outcome, error) == (Done(), None)
        assert [j.attempts for j in runs] == [0]


@run_async
async def test_worker_reconnects_after_server_restart(server):
    seen: "asyncio.Queue[str]" = asyncio.Queue()
    acks = AioAcks()
    w = aio.Worker(server.addr, reconnect_min=0.05, reconnect_max=0.5, on_ack=acks)

    @w.task("phoenix")
    async def phoenix(job: aio.Job) -> None:
        await seen.put(job.name)

    async with arunning(w):
        async with aio.Client(server.addr) as client:
            await client.submit("phoenix", "before")
            assert await aget(seen, "the job before the restart") == "before"
            assert (await acks.next())[2] is None  # committed: it will not come back
        await asyncio.to_thread(server.restart)
        async with aio.Client(server.addr) as client:
            await client.submit("phoenix", "after")
        assert await aget(seen, "the job after the restart") == "after"


@run_async
async def test_client_operations(server):
    async with aio.Client(server.addr) as client:
        with pytest.raises(aio.InvalidArgumentError, match="name"):
            await client.submit("t", "")
        a = await client.submit("t", "a", delay=3600)
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
        b = await client.submit("t", "b", sched_at=when)
        c = await client.submit("t", "c", sched_at=time.time() + 7200, priority=9)
        assert await client.submit("t", "a", b"new", delay=3600) == a
        assert (await client.get("t", "a")).args == b"new"
        st = await client.status("t")
        assert (st["t"].scheduled, st.totals.scheduled) == (3, 3)
        backup = sorted([j async for j in client.dump()], key=lambda j: j.id)
        assert [j.id for j in backup] == [a, b, c]
        assert await client.remove("t", "a") == a
        with pytest.raises(aio.NotFoundError):
            await client.remove(job_id=a)
        assert await client.drop("t") == 2
        assert await client.load(backup) == 3
        assert (await client.get("t", "c")).priority == 9


@run_async
async def test_refused_worker_raises_instead_of_reconnecting(server):
    w = aio.Worker(server.addr, reconnect_min=0.01)
    w.add_task("x" * 256, lambda job: None)  # task names are 1..255 bytes
    with pytest.raises(aio.InvalidArgumentError, match="tasks"):
        await asyncio.wait_for(w.run(), DEADLINE)


@run_async
async def test_submit_stream_from_an_async_iterable(server):
    async def jobs():
        for i in range(500):
            yield {"task": "astream", "name": f"a{i}", "delay": 60 if i % 2 else None}

    async with aio.Client(server.addr) as client:
        acks = [a async for a in client.submit_stream(jobs())]
        assert [a.seq for a in acks] == list(range(500))
        assert all(a.ok and a.job_id for a in acks)
        status = (await client.status())["astream"]
        assert (status.pending, status.scheduled) == (250, 250)
        bad = [a async for a in client.submit_stream([{"task": "astream", "name": "x" * 256}])]
        assert isinstance(bad[0].error, aio.InvalidArgumentError)
        assert bad[0].error.details.startswith("name:")


@run_async
async def test_removing_a_running_job_cancels_its_async_handler(server):
    started: "asyncio.Queue[str]" = asyncio.Queue()
    seen: "asyncio.Queue[tuple[tuple[object, ...], bool]]" = asyncio.Queue()
    acks = AioAcks()
    # Capacity 1: the next job runs only once the cancelled one freed its slot.
    w = aio.Worker(server.addr, on_ack=acks)

    @w.task("long")
    async def long(job: aio.Job) -> aio.Outcome:
        started.put_nowait(job.name)
        if job.name == "next":
            return Done()
        try:
            await asyncio.Event().wait()  # forever
        except asyncio.CancelledError as e:
            seen.put_nowait((e.args, job.is_cancelled()))
            raise
        return Done(b"unreachable")

    async with aio.Client(server.addr) as client, arunning(w):
        job_id = await client.submit("long", "first")
        assert await aget(started, "the first job") == "first"
        await client.remove("long", "first")
        args, cancelled = await aget(seen, "CancelledError in the handler")
        assert cancelled and len(args) == 1 and args[0], args
        job, _, error = await acks.next("the cancelled job's ack")
        assert job.id == job_id and job.cancelled.reason == args[0] and error
        await client.submit("long", "next")
        assert await aget(started, "the next job") == "next"
        job, outcome, error = await acks.next("the next job's ack")
        assert (job.name, outcome, error) == ("next", Done(), None)


@run_async
async def test_removing_a_running_job_sets_the_flag_of_a_thread_handler(server):
    seen: "asyncio.Queue[Optional[str]]" = asyncio.Queue()
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    acks = AioAcks()
    w = aio.Worker(server.addr, on_ack=acks)

    @w.task("long")
    def long(job: aio.Job) -> aio.Outcome:
        loop.call_soon_threadsafe(started.set)
        job.cancelled.wait(DEADLINE)
        loop.call_soon_threadsafe(seen.put_nowait, job.cancelled.reason)
        return Done(b"not applied")

    async with aio.Client(server.addr) as client, arunning(w):
        await client.submit("long", "first")
        await await_event(started, "the job to start")
        await client.remove("long", "first")
        assert await aget(seen, "the handler to see the cancel")
        job, _, error = await acks.next("the cancelled job's ack")
        assert job.is_cancelled() and error


@run_async
async def test_errors_follow_the_servers_reason(server):
    async with aio.Client(server.addr) as client:
        with pytest.raises(aio.NoWorkerError) as e:
            await client.run_job("why", "x", wait=DEADLINE)
        assert (e.value.reason, e.value.metadata["task"]) == ("NO_WORKER", "why")

        w = aio.Worker(server.addr)
        w.add_task("why", lambda job: None)
        async with arunning(w):
            with pytest.raises(aio.WorkersPresentError) as e:
                await client.drop("why")
        assert e.value.reason == "WORKERS_PRESENT"

        from taskhive.errors import from_rpc_error
        from taskhive.v1 import scheduler_pb2 as pb
        from taskhive.v1 import scheduler_pb2_grpc as pb_grpc
        import grpc

        async with grpc.aio.insecure_channel(server.addr) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as raw:
                await pb_grpc.SchedulerStub(ch).ReportResult(
                    pb.ReportResultRequest(lease_id=77, outcome=pb.Outcome(done=pb.Done()))
                )
        err = from_rpc_error(raw.value)
        assert isinstance(err, aio.StaleLeaseError) and err.metadata["cause"] == "ended"


@run_async
async def test_schedules_fire_pause_resume_and_refuse_bad_expressions(server):
    async with aio.Client(server.addr) as client:
        with pytest.raises(aio.InvalidArgumentError, match="cron"):
            await client.create_schedule("bad", "* * *", "cron")
        s = await client.create_schedule("tick", "* * * * * *", "cron", "x", tz="Europe/Paris")
        assert (s.tz, s.missed, len(s.next_fire_ms)) == ("Europe/Paris", "skip", 5)
        deadline = time.monotonic() + DEADLINE
        while not (await client.get_schedule("tick")).last_job:
            assert time.monotonic() < deadline, "no tick fired"
            await asyncio.sleep(0.1)
        assert (await client.pause_schedule("tick")).paused
        assert not (await client.resume_schedule("tick")).paused
        assert [x.name for x in await client.list_schedules()] == ["tick"]
        await client.delete_schedule("tick")
        with pytest.raises(aio.NotFoundError):
            await client.get_schedule("tick")


@run_async
async def test_a_paused_task_keeps_its_jobs_until_resumed(server):
    async with aio.Client(server.addr) as client:
        assert (await client.pause_task("held")).paused
        await client.submit("held", "a")
        assert (await client.status("held"))["held"].paused
        assert not (await client.resume_task("held")).paused
