"""The payload budget measured against a real server (used by bench/payload-memory).

Starts `taskhive serve --payload-memory BUDGET` on an empty data directory, then:
  submit:   8 threads submit N jobs of SIZE bytes (seeded random bytes; their SHA-256 kept
            here), due one millisecond apart an hour ago, in shuffled order;
  restart:  SIGKILL, then the server is started again on the same directory;
  dispatch: one Python worker of capacity 1 takes every job, checks it is the next one in due
            order and that its payload's SHA-256 matches, and reports done.
The server's RSS (VmRSS from /proc) is sampled every 20 ms; the peak of each phase is printed
as one JSON object per phase, with the time it took (a restart's peak is its VmHWM: the
start-up read happens before the server listens).

  python bench/payload_memory.py BIN [--jobs 5000] [--size 1000000] [--budget 256MiB]
"""

import argparse
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import tempfile
import threading
import time

from taskhive import Client, Done, Worker


def rss_kib(pid, field="VmRSS"):
    """VmRSS (resident now) or VmHWM (the most ever resident) of a process, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(field + r":\s+(\d+) kB", f.read()).group(1))


class Sampler:
    """Peak RSS of one process between start() and stop()."""

    def __init__(self, pid):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()

    def __enter__(self):
        def loop():
            while not self._stop.is_set():
                try:
                    self.peak = max(self.peak, rss_kib(self.pid))
                except (FileNotFoundError, ProcessLookupError, AttributeError):
                    return
                time.sleep(0.02)

        self._t = threading.Thread(target=loop, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_kib(self.pid))


def serve(bin_, data, budget):
    out = tempfile.TemporaryFile()
    p = subprocess.Popen(
        [bin_, "serve", "--listen", "127.0.0.1:0", "--data", data, "--payload-memory", budget],
        stdout=subprocess.PIPE,
        stderr=out,
        env={**os.environ, "RUST_LOG": "warn"},
    )
    line = p.stdout.readline().decode()
    assert line.startswith("listening on "), line
    return p, line.removeprefix("listening on ").strip()


def payload(i, size):
    return random.Random(i).randbytes(size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bin")
    ap.add_argument("--jobs", type=int, default=5000)
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--budget", default="256MiB")
    ap.add_argument("--threads", type=int, default=8)
    a = ap.parse_args()
    data = tempfile.mkdtemp(prefix="payload-memory-")
    digests = [None] * a.jobs
    base = int(time.time() * 1000) - 3_600_000

    p, addr = serve(a.bin, data, a.budget)
    empty = rss_kib(p.pid)
    order = list(range(a.jobs))
    random.Random(7).shuffle(order)
    t0 = time.monotonic()
    with Sampler(p.pid) as s:
        failed = []

        def submitter(k):
            try:
                c = Client(addr)
                for i in order[k :: a.threads]:
                    body = payload(i, a.size)
                    digests[i] = hashlib.sha256(body).digest()
                    c.submit("pm", f"j{i:06}", body, sched_at=(base + i) / 1000)
                c.close()
            except Exception as e:  # noqa: BLE001 - reported below, the run stops
                failed.append(e)

        ts = [threading.Thread(target=submitter, args=(k,)) for k in range(a.threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    if failed:
        p.kill()
        raise SystemExit(f"submits failed: {failed[0]!r}")
    print(json.dumps({"phase": "submit", "jobs": a.jobs, "size": a.size, "budget": a.budget,
                      "rss_empty_mib": round(empty / 1024, 1), "peak_rss_mib": round(s.peak / 1024, 1),
                      "seconds": round(time.monotonic() - t0, 1)}), flush=True)

    p.send_signal(signal.SIGKILL)
    p.wait()
    t0 = time.monotonic()
    p, addr = serve(a.bin, data, a.budget)
    with Sampler(p.pid) as s:
        c = Client(addr)
        st = c.status("pm")
        c.close()
    # The start-up read happens before the server listens: VmHWM covers it.
    print(json.dumps({"phase": "restart", "pending": st["pm"].pending,
                      "peak_rss_mib": round(rss_kib(p.pid, "VmHWM") / 1024, 1),
                      "rss_serving_mib": round(s.peak / 1024, 1),
                      "seconds_to_serving": round(time.monotonic() - t0, 2)}), flush=True)

    got, bad, out_of_order = [0], [], []
    finished = threading.Event()
    w = Worker(addr, capacity=1)

    @w.task("pm")
    def handle(job):
        i = int(job.name[1:])
        if i != got[0]:
            out_of_order.append((got[0], i))
        if hashlib.sha256(job.args).digest() != digests[i]:
            bad.append(i)
        got[0] += 1
        if got[0] == a.jobs:
            finished.set()
        return Done()

    t0 = time.monotonic()
    with Sampler(p.pid) as s:
        w.start()
        assert finished.wait(3600), f"only {got[0]} of {a.jobs} jobs arrived"
        w.stop(10)
    print(json.dumps({"phase": "dispatch", "received": got[0], "bad_checksums": len(bad),
                      "out_of_due_order": len(out_of_order), "peak_rss_mib": round(s.peak / 1024, 1),
                      "seconds": round(time.monotonic() - t0, 1)}), flush=True)
    p.terminate()
    p.wait()
    subprocess.run(["rm", "-rf", data], check=False)


if __name__ == "__main__":
    main()
