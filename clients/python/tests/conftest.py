"""Starts a real `taskhive serve` (from $TASKHIVE_BIN) on a free port with a fresh data dir."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator, Optional, Sequence

import pytest

REPO = Path(__file__).resolve().parents[3]
BIN = os.environ.get("TASKHIVE_BIN") or str(REPO / "target" / "debug" / "taskhive")
START_TIMEOUT = 30.0

sys.path.insert(0, str(Path(__file__).resolve().parent))


class Server:
    """A `taskhive serve` child process; restartable on the same port and data dir."""

    def __init__(self, data: Path, log: Path, extra: Sequence[str] = ()) -> None:
        self.extra = list(extra)
        self.data = data
        self.log = log
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self.addr = ""
        self._port = 0

    def start(self) -> None:
        listen = f"127.0.0.1:{self._port}"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [BIN, "serve", "--listen", listen, "--data", str(self.data), *self.extra],
                stdout=subprocess.PIPE,
                stderr=log,
            )
        lines: "queue.Queue[bytes]" = queue.Queue()
        out = self.proc.stdout
        assert out is not None

        def pump() -> None:  # first line to us, the rest drained so the server never blocks
            with out:
                for line in iter(out.readline, b""):
                    lines.put(line)

        threading.Thread(target=pump, daemon=True).start()
        try:
            first = lines.get(timeout=START_TIMEOUT).decode().strip()
        except queue.Empty:
            self.kill()
            raise RuntimeError(f"server did not start in {START_TIMEOUT}s; see {self.log}") from None
        assert first.startswith("listening on "), first
        self.addr = first.removeprefix("listening on ")
        self._port = int(self.addr.rsplit(":", 1)[1])

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> None:
        """Stops gracefully and starts again on the same port and data dir."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def taskhive_bin() -> str:
    if not os.access(BIN, os.X_OK):
        pytest.fail(f"no taskhive binary at {BIN}: build it (cargo build) or set TASKHIVE_BIN")
    return BIN


@pytest.fixture
def server(taskhive_bin: str, tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path / "data", tmp_path / "server.log")
    s.start()
    try:
        yield s
    finally:
        s.kill()
