"""Job keys and task limits (flow control) against a real server: blocking and asyncio clients."""

from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar

import pytest

import taskhive
from taskhive import Done, TaskLimits, aio
from support import DEADLINE, Acks, run_async, running, wait

T = TypeVar("T")


@pytest.fixture
def client(server):
    with taskhive.Client(server.addr) as c:
        yield c


def eventually(probe: Callable[[], T], ok: Callable[[T], bool], what: str) -> T:
    """Polls ``probe`` until ``ok`` holds for its value; fails the test after the deadline."""
    end = time.monotonic() + DEADLINE
    while True:
        v = probe()
        if ok(v):
            return v
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}; last: {v!r}")
        time.sleep(0.02)


def test_key_round_trips_on_every_submit_path(server, client):
    client.submit("keyed", "one", key="acct-1")
    assert client.get("keyed", "one").key == "acct-1"
    client.submit("keyed", "none")
    assert client.get("keyed", "none").key == ""
    client.submit_many(
        [
            {"task": "keyed", "name": "many-1", "key": "acct-2"},
            {"task": "keyed", "name": "many-2", "key": "acct-3"},
        ]
    )
    assert [client.get("keyed", f"many-{i}").key for i in (1, 2)] == ["acct-2", "acct-3"]
    acks = list(client.submit_stream([{"task": "keyed", "name": "streamed", "key": "acct-4"}]))
    assert acks[0].ok
    assert client.get("keyed", "streamed").key == "acct-4"
    assert {j.name: j.key for j in client.list_jobs("keyed")}["one"] == "acct-1"
    # The server checks the key: at most 255 bytes.
    with pytest.raises(taskhive.InvalidArgumentError) as e:
        client.submit("keyed", "long", key="k" * 256)
    assert e.value.metadata["field"] == "key"

    # run_job carries the key too, and the worker's Job has it.
    w = taskhive.Worker(server.addr)

    @w.task("echo-key")
    def echo_key(job: taskhive.Job) -> Done:
        return Done(job.key.encode())

    with running(w):
        assert client.run_job("echo-key", "r1", key="acct-5", wait=DEADLINE) == b"acct-5"


def test_set_get_status_and_clear_limits(client):
    assert client.get_task_limits("lim") == TaskLimits() and not client.get_task_limits("lim")
    want = TaskLimits(
        max_running=5, rate="100/s", burst=10, max_running_per_key=2, rate_per_key="10/5m"
    )
    got = client.set_task_limits(
        "lim", max_running=5, rate="100/s", burst=10, max_running_per_key=2, rate_per_key="10/5m"
    )
    assert got == want and got
    assert client.get_task_limits("lim") == want
    client.submit("lim", "j1")
    st = client.status("lim")["lim"]
    assert (st.limits, st.waiting_on_limit, st.pending) == (want, 0, 1)
    assert client.status()["lim"].limits == want

    # Setting replaces: limits left out are gone.
    assert client.set_task_limits("lim", max_running=3, rate="5/s") == TaskLimits(
        max_running=3, rate="5/s"
    )
    before = client.get_task_limits("lim")
    assert before == TaskLimits(max_running=3, rate="5/s")

    # A bad rate is refused naming the field, and nothing is stored.
    for bad in ("0/s", "10/w"):
        with pytest.raises(taskhive.InvalidArgumentError) as e:
            client.set_task_limits("lim", max_running=7, rate=bad)
        assert e.value.metadata["field"] == "rate", e.value
        assert e.value.details.startswith("rate"), e.value
        assert client.get_task_limits("lim") == before
    with pytest.raises(taskhive.InvalidArgumentError) as e:
        client.set_task_limits("lim", burst=3)  # a burst needs a rate
    assert e.value.metadata["field"] == "burst"
    assert client.get_task_limits("lim") == before

    client.clear_task_limits("lim")
    assert client.get_task_limits("lim") == TaskLimits()
    assert client.status("lim")["lim"].limits is None
    # set_task_limits with no limits clears too.
    client.set_task_limits("lim", max_running=1)
    assert client.set_task_limits("lim") == TaskLimits()
    assert client.get_task_limits("lim") == TaskLimits()


def test_status_counts_jobs_waiting_on_a_limit(server, client):
    client.set_task_limits("held", max_running=1)
    gate = threading.Event()
    started = threading.Event()
    acks = Acks()
    w = taskhive.Worker(server.addr, capacity=3, on_ack=acks)

    @w.task("held")
    def held(job: taskhive.Job) -> None:
        started.set()
        wait(gate, "the gate")

    for i in range(3):
        client.submit("held", f"h{i}")
    with running(w):
        wait(started, "the first job to start")
        st = eventually(
            lambda: client.status("held")["held"],
            lambda s: (s.running, s.pending, s.waiting_on_limit) == (1, 2, 2),
            "1 running and 2 waiting on the limit",
        )
        assert st.limits == TaskLimits(max_running=1)
        gate.set()
        for i in range(3):
            assert acks.next(f"ack {i}")[2] is None
        st = client.status("held")["held"]
        assert (st.running, st.pending, st.waiting_on_limit) == (0, 0, 0)


def test_max_running_caps_jobs_in_flight_below_worker_capacity(server, client):
    limit, jobs, capacity = 2, 8, 8
    client.set_task_limits("capped", max_running=limit)
    lock = threading.Lock()
    in_flight = 0
    peak = 0
    acks = Acks()
    w = taskhive.Worker(server.addr, capacity=capacity, on_ack=acks)

    @w.task("capped")
    def capped(job: taskhive.Job) -> None:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        try:
            time.sleep(0.1)  # the work
        finally:
            with lock:
                in_flight -= 1

    for i in range(jobs):
        client.submit("capped", f"c{i}")
    with running(w):
        for i in range(jobs):
            _, outcome, error = acks.next(f"ack {i} of {jobs}")
            assert (outcome, error) == (Done(), None)
    with lock:
        assert peak == limit, f"at most {peak} jobs ran at once; the limit is {limit}"
    st = client.status("capped")["capped"]
    assert (st.pending, st.running, st.waiting_on_limit) == (0, 0, 0)


@run_async
async def test_aio_key_and_limits(server):
    async with aio.Client(server.addr) as c:
        await c.submit("akeyed", "a1", key="acct-1")
        assert (await c.get("akeyed", "a1")).key == "acct-1"
        await c.submit_many([{"task": "akeyed", "name": "a2", "key": "acct-2"}])
        assert (await c.get("akeyed", "a2")).key == "acct-2"
        acks = [a async for a in c.submit_stream([{"task": "akeyed", "name": "a3", "key": "k3"}])]
        assert acks[0].ok and (await c.get("akeyed", "a3")).key == "k3"

        want = TaskLimits(max_running=2, rate_per_key="1/s")
        assert await c.set_task_limits("akeyed", max_running=2, rate_per_key="1/s") == want
        assert await c.get_task_limits("akeyed") == want
        assert (await c.status("akeyed"))["akeyed"].limits == want
        with pytest.raises(aio.InvalidArgumentError) as e:
            await c.set_task_limits("akeyed", rate="10/w")
        assert e.value.metadata["field"] == "rate"
        assert await c.get_task_limits("akeyed") == want
        await c.clear_task_limits("akeyed")
        assert await c.get_task_limits("akeyed") == TaskLimits()
        assert (await c.status("akeyed"))["akeyed"].limits is None
