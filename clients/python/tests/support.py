"""Helpers of the test suite: waiting on queues and events with a deadline, running workers."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Optional, TypeVar

import taskhive
from taskhive import aio

#: How long any single wait may take before the test fails.
DEADLINE = 20.0
HERE = Path(__file__).resolve().parent
T = TypeVar("T")


def get(q: "queue.Queue[T]", what: str, timeout: float = DEADLINE) -> T:
    """The next item of ``q``; fails the test after ``timeout`` seconds."""
    try:
        return q.get(timeout=timeout)
    except queue.Empty:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


def wait(ev: threading.Event, what: str, timeout: float = DEADLINE) -> None:
    """Waits for ``ev``; fails the test after ``timeout`` seconds."""
    assert ev.wait(timeout), f"timed out after {timeout}s waiting for {what}"


async def aget(q: "asyncio.Queue[T]", what: str, timeout: float = DEADLINE) -> T:
    """The next item of an asyncio queue; fails the test after ``timeout`` seconds."""
    try:
        return await asyncio.wait_for(q.get(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


async def await_event(ev: asyncio.Event, what: str, timeout: float = DEADLINE) -> None:
    """Waits for an asyncio event; fails the test after ``timeout`` seconds."""
    try:
        await asyncio.wait_for(ev.wait(), timeout)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout}s waiting for {what}") from None


class Acks:
    """An ``on_ack`` callback recording (job, outcome, error) in a queue."""

    def __init__(self) -> None:
        self.q: "queue.Queue[tuple[taskhive.Job, taskhive.Outcome, Optional[str]]]" = queue.Queue()

    def __call__(self, job: taskhive.Job, outcome: taskhive.Outcome, error: Optional[str]) -> None:
        self.q.put((job, outcome, error))

    def next(self, what: str = "an ack") -> "tuple[taskhive.Job, taskhive.Outcome, Optional[str]]":
        return get(self.q, what)


class AioAcks:
    """An asyncio ``on_ack`` callback recording (job, outcome, error) in an asyncio queue."""

    def __init__(self) -> None:
        self.q: "asyncio.Queue[tuple[taskhive.Job, taskhive.Outcome, Optional[str]]]" = asyncio.Queue()

    async def __call__(self, job: taskhive.Job, outcome: taskhive.Outcome, error: Optional[str]) -> None:
        await self.q.put((job, outcome, error))

    async def next(self, what: str = "an ack") -> "tuple[taskhive.Job, taskhive.Outcome, Optional[str]]":
        return await aget(self.q, what)


@contextlib.contextmanager
def running(worker: taskhive.Worker) -> Iterator[taskhive.Worker]:
    """Runs a blocking worker in a thread while the block runs; stops it after."""
    worker.start()
    try:
        assert worker.wait_connected(DEADLINE), f"worker not connected: {worker.error}"
        yield worker
    finally:
        worker.stop(10)
        assert worker.error is None, worker.error


@contextlib.asynccontextmanager
async def arunning(worker: aio.Worker) -> AsyncIterator[aio.Worker]:
    """Runs an asyncio worker as a task while the block runs; stops it after."""
    task = asyncio.create_task(worker.run())
    try:
        assert await worker.wait_connected(DEADLINE), "worker not connected"
        yield worker
    finally:
        await worker.stop(10)
        await asyncio.wait_for(task, 10)


def run_async(coro_fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turns an ``async def`` test into a plain one run by ``asyncio.run`` (with a deadline)."""
    import functools
    import inspect

    @functools.wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return asyncio.run(asyncio.wait_for(coro_fn(*args, **kwargs), 120))

    wrapper.__signature__ = inspect.signature(coro_fn)  # type: ignore[attr-defined]
    return wrapper


class WorkerProcess:
    """tests/worker_proc.py in a child process (see there for the modes and what it prints)."""

    def __init__(self, addr: str, task: str, mode: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "worker_proc.py"), addr, task, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        out = self.proc.stdout
        assert out is not None

        def pump() -> None:
            with out:
                for line in iter(out.readline, b""):
                    self.lines.put(line.decode().strip())

        threading.Thread(target=pump, daemon=True).start()

    def line(self, what: str) -> str:
        try:
            return get(self.lines, what)
        except AssertionError:
            self.proc.kill()
            err = self.proc.stderr.read().decode() if self.proc.stderr else ""
            raise AssertionError(f"timed out waiting for {what}; worker stderr:\n{err}") from None

    def started(self) -> str:
        """The first ``started ...`` line (``connected`` may come before or after it)."""
        while True:
            line = self.line("the child worker to start the job")
            if line.startswith("started"):
                return line

    def expect(self, line: str) -> None:
        """Skips lines until ``line``; fails the test after the deadline."""
        while self.line(repr(line)) != line:
            pass

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        for f in (self.proc.stdin, self.proc.stderr):
            if f is not None:
                f.close()
