"""examples/python/random_print_*.py, bounded to a few seconds, against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

from conftest import REPO
from support import DEADLINE

EXAMPLES = REPO / "examples" / "python"


def test_random_print_examples(server):
    env = {**os.environ, "TASKHIVE_ADDR": server.addr, "PYTHONUNBUFFERED": "1"}
    worker = subprocess.Popen(
        [
            sys.executable, str(EXAMPLES / "random_print_worker.py"),
            "--max-count", "3", "--min-delay", "0.05", "--max-delay", "0.15", "--exit-on-finish",
        ],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        client = subprocess.run(
            [sys.executable, str(EXAMPLES / "random_print_client.py"), "--addr", server.addr],
            env=env, capture_output=True, text=True, timeout=DEADLINE,
        )
        assert client.returncode == 0, client.stderr
        assert "submitted job" in client.stdout and "'Hello world!'" in client.stdout
        # The worker exits by itself once the job finished (a bounded wait, not a sleep).
        out, err = worker.communicate(timeout=3 * DEADLINE)
    finally:
        worker.kill()
    assert worker.returncode == 0, err
    lines = out.splitlines()
    # Periodic's output: the count and the name at every run, until the count passes 3.
    assert lines == [f"{i} Hello world!" for i in range(5)] + ["Finish!"], out
