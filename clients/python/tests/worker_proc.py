"""A worker in its own process, for the kill and signal tests.

Usage: worker_proc.py ADDR TASK MODE, MODE one of
  sync, aio           -- hold every job forever (until killed)
  sync-term, aio-term -- run in the main thread / loop, SIGTERM stops the worker gracefully;
                         each job waits for a line on stdin, then is done
Prints ``connected`` once welcomed, ``started JOB_ID ATTEMPTS`` per job, ``stopped`` at the end.
"""

import asyncio
import signal
import sys
import threading

import taskhive
from taskhive import aio

_out = threading.Lock()


def say(line: str) -> None:
    """One whole line per write: the handler thread and the main thread both print."""
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def announce(job: taskhive.Job) -> None:
    say(f"started {job.id} {job.attempts}")


def sync_hold(addr: str, task: str) -> None:
    w = taskhive.Worker(addr, capacity=1)

    @w.task(task)
    def hold(job: taskhive.Job) -> None:
        announce(job)
        threading.Event().wait()  # until killed

    w.start()
    if not w.wait_connected(30):
        sys.exit(f"not connected: {w.error}")
    say("connected")
    w.join()


def sync_term(addr: str, task: str) -> None:
    w = taskhive.Worker(addr, capacity=1)

    @w.task(task)
    def wait_for_go(job: taskhive.Job) -> bytes:
        announce(job)
        return sys.stdin.readline().strip().encode()

    signal.signal(signal.SIGTERM, lambda *_: w.stop())
    threading.Thread(target=lambda: w.wait_connected(30) and say("connected"), daemon=True).start()
    w.run()  # in the main thread, interrupted by the signal handler
    say("stopped")


async def aio_hold(addr: str, task: str) -> None:
    w = aio.Worker(addr, capacity=1)

    @w.task(task)
    async def hold(job: aio.Job) -> None:
        announce(job)
        await asyncio.Event().wait()  # until killed

    t = asyncio.create_task(w.run())
    if not await w.wait_connected(30):
        sys.exit("not connected")
    say("connected")
    await t


async def aio_term(addr: str, task: str) -> None:
    w = aio.Worker(addr, capacity=1)

    @w.task(task)
    def wait_for_go(job: aio.Job) -> bytes:  # a plain function: runs in a thread
        announce(job)
        return sys.stdin.readline().strip().encode()

    loop = asyncio.get_running_loop()
    stopping = []
    loop.add_signal_handler(signal.SIGTERM, lambda: stopping.append(loop.create_task(w.stop())))
    t = asyncio.create_task(w.run())
    if not await w.wait_connected(30):
        sys.exit("not connected")
    say("connected")
    await t
    say("stopped")


def main() -> None:
    addr, task, mode = sys.argv[1:4]
    if mode == "sync":
        sync_hold(addr, task)
    elif mode == "sync-term":
        sync_term(addr, task)
    elif mode == "aio":
        asyncio.run(aio_hold(addr, task))
    elif mode == "aio-term":
        asyncio.run(aio_term(addr, task))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
