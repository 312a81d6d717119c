#!/usr/bin/env python3
"""Periodic's seed example, worker side, with taskhive's asyncio client.

Serves task ``random_print``: prints the job's count and name, then runs the job again a
random 5 to 10 seconds later, until its count passes 10; then it is done and prints
"Finish!". Start it, then submit the job with ``random_print_client.py``:

    python examples/python/random_print_worker.py --addr 127.0.0.1:5000
    python examples/python/random_print_client.py --addr 127.0.0.1:5000

Every knob is also an environment variable (for CI runs bounded in seconds):
``--max-count`` RANDOM_PRINT_MAX_COUNT (10), ``--min-delay``/``--max-delay``
RANDOM_PRINT_MIN_DELAY/RANDOM_PRINT_MAX_DELAY (5/10 seconds, floats allowed),
``--exit-on-finish`` RANDOM_PRINT_EXIT_ON_FINISH=1, ``--addr`` TASKHIVE_ADDR.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal

from taskhive import aio


def parse_args() -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--addr", default=env("TASKHIVE_ADDR", "127.0.0.1:5000"), help="server address")
    p.add_argument("--func", default="random_print", help="task to serve")
    p.add_argument("--max-count", type=int, default=int(env("RANDOM_PRINT_MAX_COUNT", "10")),
                   help="done once the count passes this")
    p.add_argument("--min-delay", type=float, default=float(env("RANDOM_PRINT_MIN_DELAY", "5")),
                   help="shortest delay before the next run, seconds")
    p.add_argument("--max-delay", type=float, default=float(env("RANDOM_PRINT_MAX_DELAY", "10")),
                   help="longest delay before the next run, seconds")
    p.add_argument("--exit-on-finish", action="store_true",
                   default=env("RANDOM_PRINT_EXIT_ON_FINISH", "") not in ("", "0"),
                   help="stop the worker once a job finished")
    a = p.parse_args()
    if a.min_delay > a.max_delay:
        p.error("--min-delay must not exceed --max-delay")
    return a


def next_delay(lo: float, hi: float) -> float:
    """random.randint(5, 10) like the original for whole seconds, a uniform float otherwise."""
    if lo.is_integer() and hi.is_integer():
        return random.randint(int(lo), int(hi))
    return random.uniform(lo, hi)


async def main() -> None:
    args = parse_args()
    worker = aio.Worker(args.addr)
    finished = asyncio.Event()

    @worker.task(args.func)
    async def random_print(job: aio.Job) -> aio.Outcome:
        count = job.run_count
        print(count, job.name, flush=True)
        if count > args.max_count:
            print("Finish!", flush=True)
            if args.exit_on_finish:
                finished.set()
            return aio.Done()
        return aio.SchedLater(next_delay(args.min_delay, args.max_delay))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, finished.set)

    run = asyncio.create_task(worker.run())
    stop = asyncio.create_task(finished.wait())
    await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
    # Graceful: the running job finishes and its outcome is committed before we exit.
    await worker.stop(timeout=30)
    stop.cancel()
    await run  # re-raises a fatal worker error


if __name__ == "__main__":
    asyncio.run(main())
