package taskhive

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// Traces: calls made with a context that holds an OpenTelemetry span send its W3C
// traceparent, so a submit joins the caller's trace; a worker runs each handler in a
// "taskhive.work TASK" span (kind consumer) continuing the traceparent the server handed
// over with the job, so the handler's ctx carries it. Spans go to the application's tracer
// provider (otel.SetTracerProvider); with none set they are not recorded.

// w3c is the W3C Trace Context propagator, used whatever global propagator is set: the
// server speaks only this format.
var w3c = propagation.TraceContext{}

// traceMetadata adds the traceparent of ctx's span to the outgoing metadata.
func traceMetadata(ctx context.Context) context.Context {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return ctx
	}
	carrier := propagation.MapCarrier{}
	w3c.Inject(ctx, carrier)
	if tp := carrier.Get("traceparent"); tp != "" {
		return metadata.AppendToOutgoingContext(ctx, "traceparent", tp)
	}
	return ctx
}

// traceUnary and traceStream send the caller's trace context with every call.
func traceUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(traceMetadata(ctx), method, req, reply, cc, opts...)
}

func traceStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(traceMetadata(ctx), desc, cc, method, opts...)
}

// workSpan starts the handler's span under the job's traceparent; ctx is returned as is
// when the job carries none.
func workSpan(ctx context.Context, j *Job) (context.Context, trace.Span) {
	if j.Traceparent == "" {
		return ctx, nil
	}
	parent := w3c.Extract(ctx, propagation.MapCarrier{"traceparent": j.Traceparent})
	return otel.Tracer("taskhive").Start(parent, "taskhive.work "+j.Task,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(
			attribute.String("taskhive.task", j.Task),
			attribute.String("taskhive.job.name", j.Name),
			attribute.Int64("taskhive.job.id", int64(j.ID)),
			attribute.Int64("taskhive.job.attempts", int64(j.Attempts)),
		))
}

// endWorkSpan ends the handler's span with its outcome.
func endWorkSpan(span trace.Span, out Outcome) {
	if span == nil {
		return
	}
	if out.kind == outcomeFail {
		span.SetStatus(codes.Error, out.err)
	}
	span.End()
}
