"""A Python worker serving a load-test task class for taskhive's load runner.

Start it, save a load job that uses the class, and exec it:

    python examples/python/load_task_worker.py --addr 127.0.0.1:5000 &
    curl -d '{"name":"py","host":"http://127.0.0.1:8080","run_n":10,"n_swarm":4,
              "tasks":[{"task_class":"py.Ping","sleep_min_msec":10,"sleep_max_msec":50}]}' \\
         127.0.0.1:5000/job
    curl -d '{"name":"py","params":{"path":"/health"}}' 127.0.0.1:5000/exec

Each execution receives the job's host, the exec's params and its swarm id; what it returns
as ``request_context`` appears in the JobExec's executions, and the time it reports as
``elapsed_usec`` is used instead of the server's round trip.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import urllib.request

import taskhive


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--addr", default=os.environ.get("TASKHIVE_ADDR", "127.0.0.1:5000"))
    p.add_argument("--task-class", default="py.Ping")
    p.add_argument("--capacity", type=int, default=16)
    a = p.parse_args()
    worker = taskhive.Worker(a.addr, capacity=a.capacity)

    @worker.task(a.task_class)
    def ping(job: taskhive.Job) -> taskhive.Done:
        args = json.loads(job.args)
        url = args["host"].rstrip("/") + args["params"].get("path", "/")
        t0 = time.perf_counter()
        with urllib.request.urlopen(url, timeout=10) as r:
            status = r.status
        elapsed = int((time.perf_counter() - t0) * 1e6)
        if status >= 400:
            return taskhive.Fail(f"GET {url}: {status}")
        ctx = f"GET {url} -> {status}"
        return taskhive.Done(json.dumps({"request_context": ctx, "elapsed_usec": elapsed}).encode())

    worker.run()


if __name__ == "__main__":
    main()
