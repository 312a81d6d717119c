"""aio-periodic 1.0.0, unmodified, against taskhive's Periodic face."""

import asyncio
import time

import pytest
from aio_periodic import Client, Transport, Worker
from aio_periodic.rsp import done, sched_later

DEADLINE = 30


async def connect(cls, addr):
    c = cls()
    await c.connect(Transport(addr))
    return c


async def start_worker(addr, size=1):
    w = await connect(Worker, addr)
    task = asyncio.create_task(w.work(size))
    return w, task


async def stop(*things):
    for t in things:
        if isinstance(t, asyncio.Task):
            t.cancel()
        else:
            t.close()


async def wait_status(client, pred, func):
    """Polls STATUS until pred(status of func or None) holds, within the deadline."""
    async def loop():
        while True:
            st = await client.status()
            if pred(st.get(func)):
                return st.get(func)
            await asyncio.sleep(0.02)
    return await asyncio.wait_for(loop(), DEADLINE)


def run(coro):
    asyncio.run(asyncio.wait_for(coro, DEADLINE * 2))


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_seed_random_print(server, transport):
    addr = server.tcp if transport == "tcp" else server.unix

    async def main():
        seen = []
        finished = asyncio.Event()
        worker = await connect(Worker, addr)

        @worker.func("random_print")
        async def random_print(job):
            seen.append((len(seen), job.name))
            if len(seen) > 10:
                finished.set()
                return done()
            # Short delays: 0 or 1 s, so the run takes seconds, not minutes.
            return sched_later(len(seen) % 2)

        await worker._do_on_connected()
        wtask = asyncio.create_task(worker.work(1))
        client = await connect(Client, addr)
        assert await client.submit_job("random_print", "Hello world!", sched_at=int(time.time()))
        await asyncio.wait_for(finished.wait(), DEADLINE)
        assert [n for _, n in seen] == ["Hello world!"] * 11
        await wait_status(client, lambda s: s is None or s["job_count"] == 0, "random_print")
        await stop(wtask, worker, client)

    run(main())


def test_submit_status_remove_drop(server):
    async def main():
        client = await connect(Client, server.tcp)
        later = int(time.time()) + 3600
        assert await client.submit_job("st", "a", b"payload", sched_at=later)
        assert await client.submit_job("st", "b", sched_at=later + 10)
        st = await wait_status(client, lambda s: s is not None, "st")
        assert st == {
            "func_name": "st", "worker_count": 0, "job_count": 2,
            "processing": 0, "locked": 0, "sched_at": later,
        }
        # Visible over gRPC too.
        assert "scheduled" in server.cli("status", "-f", "st").lower()
        assert await client.remove_job("st", "a")
        st = await wait_status(client, lambda s: s is not None and s["job_count"] == 1, "st")
        assert st["sched_at"] == later + 10
        assert await client.drop_func("st")
        await wait_status(client, lambda s: s is None, "st")
        assert await client.ping()
        await stop(client)

    run(main())


def test_run_job_result_and_no_worker(server):
    async def main():
        client = await connect(Client, server.tcp)
        with pytest.raises(Exception, match="no worker"):
            await client.run_job("echo", "nobody", b"x")
        worker = await connect(Worker, server.tcp)

        @worker.func("echo")
        async def echo(job):
            return done(b"echo:" + job.workload)

        await worker._do_on_connected()
        wtask = asyncio.create_task(worker.work(2))
        assert await client.run_job("echo", "j1", b"hi") == b"echo:hi"
        assert await client.run_job("echo", "j2", b"there", timeout=5) == b"echo:there"
        await stop(wtask, worker, client)

    run(main())


def test_streamed_work_data_arrives_in_order(server):
    async def main():
        worker = await connect(Worker, server.tcp)
        go = asyncio.Event()
        chunks = []
        seen = asyncio.Condition()

        @worker.func("stream")
        async def stream(job):
            await go.wait()
            for i in range(5):
                assert await job.data(f"chunk{i}".encode())
                # aio-periodic 1.0.0's Agent.feed_data keeps at most one more frame than it
                # has waiters and drops the oldest, so two DATA frames landing in one read
                # lose one inside the client. Pace the chunks to what the watcher has seen.
                async with seen:
                    await asyncio.wait_for(seen.wait_for(lambda: len(chunks) > i), DEADLINE)
            return done(b"end")

        await worker._do_on_connected()
        wtask = asyncio.create_task(worker.work(1))
        watcher = await connect(Client, server.tcp)

        async def watch():
            async for data in watcher.recv_job_data("stream", "s1", timeout=DEADLINE):
                async with seen:
                    chunks.append(data)
                    seen.notify_all()

        wt = asyncio.create_task(watch())
        client = await connect(Client, server.tcp)
        assert await client.submit_job("stream", "s1")
        go.set()
        await asyncio.wait_for(wt, DEADLINE)
        assert chunks == [f"chunk{i}".encode() for i in range(5)]
        await stop(wtask, worker, client, watcher)

    run(main())


def test_lock_count_two_never_lets_three_run(server):
    async def main():
        worker = await connect(Worker, server.tcp)
        running = 0
        peak = 0
        finished = []
        all_done = asyncio.Event()

        async def guarded(job):
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.2)
            running -= 1
            finished.append(job.name)
            if len(finished) == 6:
                all_done.set()
            return done()

        worker.func("locked", locker=lambda job: ("L", 2))(guarded)
        await worker._do_on_connected()
        wtask = asyncio.create_task(worker.work(6))
        client = await connect(Client, server.tcp)
        for i in range(6):
            assert await client.submit_job("locked", f"j{i}")
        await asyncio.wait_for(all_done.wait(), DEADLINE)
        assert sorted(finished) == [f"j{i}" for i in range(6)]
        assert peak == 2, f"peak concurrency {peak}"
        await stop(wtask, worker, client)

    run(main())


def test_grpc_job_served_by_aio_worker_and_reverse(server, tmp_path):
    async def main():
        worker = await connect(Worker, server.tcp)
        got = asyncio.Queue()

        @worker.func("cross")
        async def cross(job):
            await got.put((job.name, job.workload))
            return done()

        await worker._do_on_connected()
        wtask = asyncio.create_task(worker.work(1))
        await asyncio.to_thread(server.cli, "submit", "-f", "cross", "-n", "from-grpc", "--args", "g")
        assert await asyncio.wait_for(got.get(), DEADLINE) == ("from-grpc", b"g")
        await stop(wtask, worker)

        # The reverse: an aio-periodic client submits, the gRPC shell worker runs it.
        log = tmp_path / "ran"
        script = tmp_path / "w.sh"
        script.write_text(f'#!/usr/bin/env bash\necho "$1 $(cat)" >> {log}\necho DONE\n')
        script.chmod(0o755)
        import os
        import subprocess
        from conftest import BIN
        runner = subprocess.Popen([BIN, "run", "-f", "rev", "--exec", str(script), "--addr", server.grpc_addr],
                                  stdout=subprocess.DEVNULL)
        try:
            client = await connect(Client, server.tcp)
            assert await client.submit_job("rev", "from-aio", b"p")
            async def ran():
                while not (log.exists() and log.read_text() == "from-aio p\n"):
                    await asyncio.sleep(0.02)
            await asyncio.wait_for(ran(), DEADLINE)
            await wait_status(client, lambda s: s is not None and s["job_count"] == 0, "rev")
            await stop(client)
        finally:
            runner.kill()
            runner.wait()

    run(main())


def test_payloads_past_the_budget_arrive_whole(server):
    """40 jobs of 3 KiB against the fixture's 8 KiB budget: most payloads are read back
    from the store when handed out, and each arrives whole."""
    def payload(i):
        return bytes((i * 31 + k * 7) % 251 for k in range(3072))

    async def main():
        client = await connect(Client, server.tcp)
        for i in range(40):
            assert await client.submit_job("big", f"j{i:02}", payload(i), sched_at=int(time.time()) - 60)
        worker = await connect(Worker, server.tcp)
        got = {}
        finished = asyncio.Event()

        @worker.func("big")
        async def big(job):
            got[job.name] = job.workload
            if len(got) == 40:
                finished.set()
            return done()

        await worker._do_on_connected()
        wtask = asyncio.create_task(worker.work(4))
        await asyncio.wait_for(finished.wait(), DEADLINE)
        for i in range(40):
            assert got[f"j{i:02}"] == payload(i), f"j{i:02}"
        await stop(wtask, worker, client)

    run(main())


def test_broadcast_job_reaches_each_of_three_workers(server):
    async def main():
        got = asyncio.Queue()
        workers, tasks = [], []
        for i in range(3):
            w = await connect(Worker, server.tcp)

            async def handler(job, i=i):
                await got.put((i, job.name))
                return done()

            w.func("bc", broadcast=True)(handler)
            await w._do_on_connected()
            tasks.append(asyncio.create_task(w.work(1)))
            workers.append(w)
        client = await connect(Client, server.tcp)
        await wait_status(client, lambda s: s is not None and s["worker_count"] == 3, "bc")
        assert await client.submit_job("bc", "to-all")
        seen = sorted([await asyncio.wait_for(got.get(), DEADLINE) for _ in range(3)])
        assert seen == [(0, "to-all"), (1, "to-all"), (2, "to-all")]
        await wait_status(client, lambda s: s["job_count"] == 0, "bc")
        await stop(*tasks, *workers, client)

    run(main())
