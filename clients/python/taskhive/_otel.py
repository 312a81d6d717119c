"""OpenTelemetry, when the application has it (``pip install taskhive[otel]``).

With ``opentelemetry-api`` importable, the client sends the current span's W3C
``traceparent`` with every call (so a submit made inside a span joins its trace), and the
workers run each handler inside a ``taskhive.work TASK`` span (kind consumer) continuing the
``traceparent`` the server handed over with the job. Without it, or outside any span, these
are no-ops. Spans go wherever the application's tracer provider sends them.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Iterator, Optional, Sequence, Tuple

if TYPE_CHECKING:  # pragma: no cover
    from taskhive._types import Job

try:
    from opentelemetry import trace as _trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    _PROPAGATOR: Optional[TraceContextTextMapPropagator] = TraceContextTextMapPropagator()
except ImportError:  # pragma: no cover - the optional dependency is absent
    _trace = None  # type: ignore[assignment]
    _PROPAGATOR = None

#: The metadata key (and HTTP header) of the W3C trace context.
TRACEPARENT = "traceparent"


def outgoing_metadata() -> Optional[Sequence[Tuple[str, str]]]:
    """The current span's ``traceparent`` as call metadata, or None (no OpenTelemetry, or
    no current span)."""
    if _PROPAGATOR is None:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    tp = carrier.get(TRACEPARENT)
    return ((TRACEPARENT, tp),) if tp else None


@contextlib.contextmanager
def job_span(job: "Job") -> Iterator[None]:
    """Runs the block (the handler) as the current span ``taskhive.work TASK``, a child of
    the job's ``traceparent``; an exception escaping the block is recorded on the span."""
    if _PROPAGATOR is None or not job.traceparent:
        yield
        return
    ctx = _PROPAGATOR.extract({TRACEPARENT: job.traceparent})
    tracer = _trace.get_tracer("taskhive")
    with tracer.start_as_current_span(
        f"taskhive.work {job.task}",
        context=ctx,
        kind=_trace.SpanKind.CONSUMER,
        attributes={
            "taskhive.task": job.task,
            "taskhive.job.name": job.name,
            "taskhive.job.id": job.id,
            "taskhive.job.attempts": job.attempts,
        },
    ):
        yield
