"""Starts a real `taskhive serve` with the Periodic face on TCP and a unix socket."""

import os
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("TASKHIVE_BIN", str(ROOT / "target" / "debug" / "taskhive"))


class Server:
    def __init__(self, proc, grpc_addr, tcp, unix):
        self.proc = proc
        self.grpc_addr = grpc_addr
        self.tcp = tcp
        self.unix = unix

    def cli(self, *args, input=None):
        """Runs a taskhive client command against this server (a gRPC client)."""
        return subprocess.run(
            [BIN, *args, "--addr", self.grpc_addr],
            input=input,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()


def _read_lines(proc, n, timeout=30):
    lines = []
    done = threading.Event()

    def reader():
        for _ in range(n):
            lines.append(proc.stdout.readline().decode().strip())
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    if not done.wait(timeout):
        raise RuntimeError(f"server did not start: {lines}")
    return lines


@pytest.fixture
def server():
    with tempfile.TemporaryDirectory() as d:
        sock = os.path.join(d, "periodic.sock")
        proc = subprocess.Popen(
            [
                BIN, "serve", "--listen", "127.0.0.1:0", "--data", os.path.join(d, "data"),
                "--periodic-listen", "tcp://127.0.0.1:0",
                "--periodic-listen", f"unix://{sock}",
                # Small, so that payloads of a few KiB go to the store only and are read
                # back when handed out (test_payloads_past_the_budget_arrive_whole).
                "--payload-memory", "8KiB",
            ],
            stdout=subprocess.PIPE,
            stderr=open(os.path.join(d, "server.log"), "w"),
        )
        try:
            lines = _read_lines(proc, 3)
            grpc = lines[0].removeprefix("listening on ")
            tcp = lines[1].removeprefix("periodic listening on ")
            unix = lines[2].removeprefix("periodic listening on ")
            assert tcp.startswith("tcp://") and unix.startswith("unix://"), lines
            yield Server(proc, grpc, tcp, unix)
        finally:
            proc.kill()
            proc.wait()
