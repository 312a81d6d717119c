"""A load-test task class implemented in Python runs inside an Exec and shows in the JobExec."""

from __future__ import annotations

import json
import urllib.request

import taskhive
from taskhive import Done
from support import running


def post(server, path: str, body: dict) -> tuple[int, bytes]:
    req = urllib.request.Request(
        f"http://{server.addr}{path}", data=json.dumps(body).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:  # 4xx answers carry a JSON body too
        return e.code, e.read()


def test_python_task_class_runs_inside_an_exec(server):
    w = taskhive.Worker(server.addr, capacity=4)

    @w.task("py.Charge")
    def charge(job: taskhive.Job) -> Done:
        # The load runner sends {"params": ..., "host": ..., "exec_id": ..., "swarm_id": ...}.
        args = json.loads(job.args)
        ctx = f"swarm {args['swarm_id']} sc_mc={args['params']['sc_mc']}"
        return Done(json.dumps({"request_context": ctx}).encode())

    with running(w):
        job = {
            "name": "py_load",
            "host": "http://127.0.0.1:9",
            "run_n": 3,
            "n_swarm": 2,
            "tasks": [{"task_class": "py.Charge"}],
        }
        assert post(server, "/job", job) == (200, b"Job saved")
        status, body = post(server, "/exec", {"name": "py_load", "params": {"sc_mc": "mc"}})
        assert status == 200, body
        report = json.loads(body)
        task = report["tasks"]["py.Charge"]
        assert (task["n_task"], task["n_success"], task["n_fail"]) == (6, 6, 0)
        contexts = sorted({e["request_context"] for e in task["executions"]})
        assert contexts == ["swarm 1 sc_mc=mc", "swarm 2 sc_mc=mc"]


def test_load_task_worker_example_smoke(server):
    """examples/python/load_task_worker.py against a local HTTP target (bounded run)."""
    import http.server
    import subprocess
    import sys
    import threading
    from pathlib import Path

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    example = Path(__file__).resolve().parents[3] / "examples" / "python" / "load_task_worker.py"
    proc = subprocess.Popen(
        [sys.executable, str(example), "--addr", server.addr, "--task-class", "py.Ping"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = taskhive.Client(server.addr)
        import time as _t

        deadline = _t.monotonic() + 30
        while client.status("py.Ping").totals.workers == 0:
            assert _t.monotonic() < deadline, "example worker did not register"
            _t.sleep(0.05)
        host = f"http://127.0.0.1:{target.server_address[1]}"
        job = {"name": "ex", "host": host, "run_n": 2, "tasks": [{"task_class": "py.Ping"}]}
        assert post(server, "/job", job) == (200, b"Job saved")
        status, body = post(server, "/exec", {"name": "ex", "params": {"path": "/health"}})
        assert status == 200, body
        task = json.loads(body)["tasks"]["py.Ping"]
        assert (task["n_task"], task["n_success"]) == (2, 2)
        assert task["executions"][0]["request_context"] == f"GET {host}/health -> 200"
    finally:
        proc.kill()
        proc.wait()
        target.shutdown()


def test_client_saves_lists_and_execs_load_jobs_with_progress(server):
    client = taskhive.Client(server.addr)
    w = taskhive.Worker(server.addr, capacity=2)

    @w.task("py.Slow")
    def slow(job: taskhive.Job) -> Done:
        return Done(b"ctx")

    with running(w):
        saved = client.load_save(
            {"name": "slow", "host": "http://127.0.0.1:9", "run_for_sec": 2,
             "tasks": [{"task_class": "py.Slow", "sleep_min_msec": 10, "sleep_max_msec": 20}]}
        )
        assert list(saved) == ["name", "host", "tasks", "run_for_sec", "run_n", "n_swarm"]
        assert saved["tasks"][0]["host"] == "http://127.0.0.1:9"
        assert list(client.load_jobs()) == ["slow"]
        events = list(client.load_exec("slow", {"k": "v"}))
        progress, report = events[:-1], events[-1]
        assert progress, "progress events arrive while the run goes on"
        assert all(p.name == "slow" for p in progress)
        assert report["params"] == {"k": "v"}
        assert report["tasks"]["py.Slow"]["n_task"] > 0


def test_load_exec_on_agents_merges_their_figures(server):
    """`load_exec(..., agents=2)` runs the job on two `taskhive agent` processes; the report
    counts what each ran and lists them; asking for more agents than are connected is
    refused with reason TOO_FEW_AGENTS."""
    import http.server
    import subprocess
    import threading

    from conftest import BIN

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    agents = []
    try:
        for _ in range(2):
            p = subprocess.Popen(
                [BIN, "agent", "--server", server.addr],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            )
            agents.append(p)
            # "agent ID connected to ADDR" once its stream is open (the read ends with the
            # process, so a dead agent fails the test instead of hanging it).
            line = p.stdout.readline()
            assert " connected to " in line, line
        client = taskhive.Client(server.addr)
        client.load_save({
            "name": "on_agents", "host": f"http://127.0.0.1:{target.server_port}",
            "n_swarm": 4, "run_n": 5, "tasks": [{"task_class": "http.get"}],
        })
        try:
            list(client.load_exec("on_agents", agents=3))
            raise AssertionError("three agents asked of two")
        except taskhive.FailedPreconditionError as e:
            assert e.reason == "TOO_FEW_AGENTS", e
        report = list(client.load_exec("on_agents", agents=2))[-1]
        listed = report["agents"]
        assert len(listed) == 2 and not any(a["lost"] for a in listed), listed
        assert sum(a["n_task"] for a in listed) == report["n_task"] == 20
        assert sum(a["swarms"] for a in listed) == 4
        report = list(client.load_exec("on_agents", agents="all"))[-1]
        assert len(report["agents"]) == 2
    finally:
        for p in agents:
            p.kill()
            p.wait()
        target.shutdown()
