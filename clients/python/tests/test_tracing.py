"""Traces across the client, the server and the worker helpers: a submit made inside a span,
the server's spans (``serve --otlp-endpoint``) and the handler's ``taskhive.work`` span are
one trace, all received by a real OTLP/gRPC receiver built from the official protos."""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent import futures
from typing import Callable, Iterator, List, Tuple

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import taskhive
from taskhive import aio
from conftest import Server
from support import aget, arunning, get, run_async, running

#: (service.name, span) as received.
Received = Tuple[str, trace_pb2.Span]


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to it."""

    def __init__(self) -> None:
        self.spans: List[Received] = []
        self.cond = threading.Condition()

    def Export(self, request, context):  # noqa: N802 - the proto's name
        with self.cond:
            for rs in request.resource_spans:
                service = next(
                    (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"),
                    "",
                )
                for ss in rs.scope_spans:
                    self.spans.extend((service, s) for s in ss.spans)
            self.cond.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, what: str, done: Callable[[List[Received]], bool]) -> List[Received]:
        with self.cond:
            if not self.cond.wait_for(lambda: done(self.spans), timeout=30):
                names = [(svc, s.name, s.trace_id.hex()) for svc, s in self.spans]
                pytest.fail(f"never received {what}; got {names}")
            return list(self.spans)


@pytest.fixture(scope="module")
def receiver() -> Iterator[Tuple[Receiver, str]]:
    """The receiver, and this process's tracer provider exporting to it (set once: the global
    provider of OpenTelemetry cannot be replaced)."""
    r = Receiver()
    srv = grpc.server(futures.ThreadPoolExecutor(4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(r, srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    endpoint = f"http://127.0.0.1:{port}"
    provider = TracerProvider(resource=Resource.create({"service.name": "python-test"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    try:
        yield r, endpoint
    finally:
        provider.shutdown()
        srv.stop(None)


@pytest.fixture
def traced_server(taskhive_bin, tmp_path, receiver, monkeypatch) -> Iterator[Server]:
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    s = Server(tmp_path / "data", tmp_path / "server.log", ["--otlp-endpoint", receiver[1]])
    s.start()
    try:
        yield s
    finally:
        s.kill()


def find(spans: List[Received], trace_id: int, name: str) -> Received:
    got = [(svc, s) for svc, s in spans if s.name == name and s.trace_id == trace_id.to_bytes(16, "big")]
    assert len(got) == 1, f"{name}: {len(got)} spans in the trace"
    return got[0]


def check_trace(spans: List[Received], client_span: trace.Span, job: taskhive.Job, task: str) -> None:
    """client span → taskhive.submit → taskhive.dispatch → taskhive.work TASK, one trace."""
    ctx = client_span.get_span_context()
    _, client = find(spans, ctx.trace_id, "client")
    svc, submit = find(spans, ctx.trace_id, "taskhive.submit")
    assert svc == "taskhive" and submit.parent_span_id == client.span_id
    _, dispatch = find(spans, ctx.trace_id, "taskhive.dispatch")
    assert dispatch.parent_span_id == submit.span_id
    svc, work = find(spans, ctx.trace_id, f"taskhive.work {task}")
    assert svc == "python-test" and work.parent_span_id == dispatch.span_id
    assert work.kind == trace_pb2.Span.SPAN_KIND_CONSUMER
    # The worker was handed the dispatch span's context (flags as the client's: sampled).
    version, trace_id, span_id, flags = job.traceparent.split("-")
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", dispatch.span_id.hex())
    assert int(flags, 16) & 1 == 1


def whole(trace_id: int, task: str) -> Callable[[List[Received]], bool]:
    want = {"client", "taskhive.submit", "taskhive.dispatch", f"taskhive.work {task}"}
    tid = trace_id.to_bytes(16, "big")
    return lambda spans: want <= {s.name for _, s in spans if s.trace_id == tid}


def test_blocking_client_and_worker_join_one_trace(traced_server, receiver):
    seen: "queue.Queue[taskhive.Job]" = queue.Queue()
    w = taskhive.Worker(traced_server.addr)

    @w.task("traced")
    def handler(job: taskhive.Job) -> bytes:
        # The handler runs inside the work span.
        assert trace.get_current_span().get_span_context().is_valid
        seen.put(job)
        return b"ok"

    tracer = trace.get_tracer("test")
    with taskhive.Client(traced_server.addr) as c:
        with tracer.start_as_current_span("client") as client_span:
            c.submit("traced", "j1", b"x")
    with running(w):
        job = get(seen, "the traced job")
    spans = receiver[0].wait_for("the whole trace", whole(client_span.get_span_context().trace_id, "traced"))
    check_trace(spans, client_span, job, "traced")


@run_async
async def test_asyncio_client_and_worker_join_one_trace(traced_server, receiver):
    seen: "asyncio.Queue[aio.Job]" = asyncio.Queue()
    w = aio.Worker(traced_server.addr)

    @w.task("traced_aio")
    async def handler(job: aio.Job) -> bytes:
        await seen.put(job)
        return b"ok"

    tracer = trace.get_tracer("test")
    async with aio.Client(traced_server.addr) as c:
        with tracer.start_as_current_span("client") as client_span:
            await c.submit("traced_aio", "j1", b"x")
    async with arunning(w):
        job = await aget(seen, "the traced job")
    tid = client_span.get_span_context().trace_id
    spans = await asyncio.get_running_loop().run_in_executor(
        None, receiver[0].wait_for, "the whole trace", whole(tid, "traced_aio")
    )
    check_trace(spans, client_span, job, "traced_aio")
