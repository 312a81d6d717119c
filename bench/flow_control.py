"""Flow control measured with real workers (used by bench/flow-control).

Against one or more nodes (ADDRS, comma-separated; a cluster's nodes share one database):
  max_running: sets `max_running` M on a task, submits N jobs that each take D ms, runs a
    worker of capacity 10 on every node, and reports the most jobs in flight at once (seen
    by the workers, all in this process) and the throughput against M / D.
  rate: sets `rate` R/s with burst 1, submits N due jobs that finish at once, and reports
    how long the N starts took against (N - 1) / R and the gaps between starts.
Prints one JSON object per scenario.
"""

import asyncio
import json
import sys
import time

from taskhive import aio


async def workers(addrs, task, handler):
    ws = []
    for a in addrs:
        w = aio.Worker(a, capacity=10)
        w.add_task(task, handler)
        ws.append((w, asyncio.create_task(w.run())))
    for w, _ in ws:
        assert await w.wait_connected(30), "worker did not connect"
    return ws


async def stop(ws):
    for w, t in ws:
        await w.stop(5)
        t.cancel()


async def max_running(addrs, m, n, d_ms):
    task = f"fc-mr-{int(time.time() * 1000)}"
    c = aio.Client(addrs[0])
    await c.set_task_limits(task, max_running=m)
    state = {"in": 0, "max": 0, "done": 0}
    all_done = asyncio.Event()

    async def handler(job):
        state["in"] += 1
        state["max"] = max(state["max"], state["in"])
        await asyncio.sleep(d_ms / 1000)
        state["in"] -= 1
        state["done"] += 1
        if state["done"] == n:
            all_done.set()
        return b"ok"

    ws = await workers(addrs, task, handler)
    t0 = time.monotonic()
    await c.submit_many([{"task": task, "name": f"j{i}"} for i in range(n)])
    await asyncio.wait_for(all_done.wait(), 600)
    took = time.monotonic() - t0
    await stop(ws)
    ideal = n * d_ms / 1000 / m
    return {
        "scenario": "max_running", "nodes": len(addrs), "max_running": m, "jobs": n,
        "job_ms": d_ms, "max_in_flight": state["max"], "seconds": round(took, 3),
        "jobs_per_s": round(n / took, 1), "ideal_jobs_per_s": round(m * 1000 / d_ms, 1),
        "ratio_to_ideal": round(ideal / took, 3),
    }


async def rate(addrs, r, n):
    task = f"fc-rate-{int(time.time() * 1000)}"
    c = aio.Client(addrs[0])
    await c.set_task_limits(task, rate=f"{r}/s", burst=1)
    starts = []
    all_done = asyncio.Event()

    async def handler(job):
        starts.append(time.monotonic())
        if len(starts) == n:
            all_done.set()
        return b"ok"

    ws = await workers(addrs, task, handler)
    await c.submit_many([{"task": task, "name": f"j{i}"} for i in range(n)])
    await asyncio.wait_for(all_done.wait(), 600)
    await stop(ws)
    starts.sort()
    gaps = sorted(b - a for a, b in zip(starts, starts[1:]))
    span = starts[-1] - starts[0]
    ideal = (n - 1) / r
    return {
        "scenario": "rate", "nodes": len(addrs), "rate_per_s": r, "jobs": n,
        "seconds": round(span, 3), "ideal_seconds": round(ideal, 3),
        "ratio_to_ideal": round(span / ideal, 3),
        "gap_p50_ms": round(gaps[len(gaps) // 2] * 1000, 1),
        "gap_min_ms": round(gaps[0] * 1000, 1),
        "gap_max_ms": round(gaps[-1] * 1000, 1),
        "max_starts_in_any_second": max(
            sum(1 for u in starts[i:] if u - s < 1.0) for i, s in enumerate(starts)
        ),
    }


async def main():
    addrs = sys.argv[1].split(",")
    print(json.dumps(await max_running(addrs, 5, 300, 100)), flush=True)
    print(json.dumps(await rate(addrs, 50, 500)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
