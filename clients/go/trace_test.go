package taskhive_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"

	taskhive "github.com/taskhive/taskhive/clients/go"
	"github.com/taskhive/taskhive/clients/go/taskhivetest"
)

// receivedSpan is one span as an OTLP receiver got it, with its resource's service.name.
type receivedSpan struct {
	service string
	span    *tracepb.Span
}

// receiver is an OTLP/gRPC trace receiver built from the official protos.
type receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	mu      sync.Mutex
	spans   []receivedSpan
	arrived chan struct{}
}

func (r *receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.mu.Lock()
	for _, rs := range req.GetResourceSpans() {
		service := ""
		for _, a := range rs.GetResource().GetAttributes() {
			if a.GetKey() == "service.name" {
				service = a.GetValue().GetStringValue()
			}
		}
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				r.spans = append(r.spans, receivedSpan{service, s})
			}
		}
	}
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func startReceiver(t *testing.T) (*receiver, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{arrived: make(chan struct{}, 1)}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, r)
	go func() { _ = s.Serve(l) }()
	t.Cleanup(s.Stop)
	return r, l.Addr().String()
}

// trace waits until every span name in want arrived in trace tid; answers them by name.
func (r *receiver) trace(t *testing.T, tid trace.TraceID, want ...string) map[string]receivedSpan {
	t.Helper()
	deadline := time.After(waitLong)
	for {
		got := map[string]receivedSpan{}
		r.mu.Lock()
		for _, s := range r.spans {
			if trace.TraceID(s.span.GetTraceId()) == tid {
				if _, dup := got[s.span.GetName()]; dup {
					t.Fatalf("two %q spans in the trace", s.span.GetName())
				}
				got[s.span.GetName()] = s
			}
		}
		r.mu.Unlock()
		missing := 0
		for _, n := range want {
			if _, ok := got[n]; !ok {
				missing++
			}
		}
		if missing == 0 {
			return got
		}
		select {
		case <-r.arrived:
		case <-deadline:
			t.Fatalf("spans %v of trace %s never all arrived; got %v", want, tid, got)
		}
	}
}

// A submit made inside a span, the server's spans and the handler's span are one trace:
// client → taskhive.submit → taskhive.dispatch → taskhive.work TASK (in the Go worker).
func TestTraceFromClientSpanToWorkerSpan(t *testing.T) {
	rcv, addr := startReceiver(t)
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
	srv := taskhivetest.Start(t, "--otlp-endpoint", "http://"+addr)
	c := srv.Client(t)
	ctx := ctxT(t)

	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "go-test"))),
	)
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() {
		otel.SetTracerProvider(prev)
		_ = tp.Shutdown(context.Background())
	})

	seen := make(chan *taskhive.Job, 1)
	inSpan := make(chan bool, 1)
	tw := newTestWorker(c)
	tw.Handle("traced", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		inSpan <- trace.SpanContextFromContext(ctx).IsValid()
		seen <- j
		return taskhive.Done(nil)
	})

	sctx, span := tp.Tracer("test").Start(ctx, "client")
	if _, err := c.Submit(sctx, "traced", "j1", []byte("x")); err != nil {
		t.Fatal(err)
	}
	span.End()
	tw.start(t)
	j := recv(t, seen, waitLong, "the traced job")
	if !<-inSpan {
		t.Fatal("the handler's ctx holds no span")
	}
	tw.report(t, "the done ack")

	tid := span.SpanContext().TraceID()
	got := rcv.trace(t, tid, "client", "taskhive.submit", "taskhive.dispatch", "taskhive.work traced")
	client, submit := got["client"], got["taskhive.submit"]
	dispatch, work := got["taskhive.dispatch"], got["taskhive.work traced"]
	if submit.service != "taskhive" || string(submit.span.GetParentSpanId()) != string(client.span.GetSpanId()) {
		t.Fatalf("submit span %v under %x, client %x", submit.service, submit.span.GetParentSpanId(), client.span.GetSpanId())
	}
	if string(dispatch.span.GetParentSpanId()) != string(submit.span.GetSpanId()) {
		t.Fatal("dispatch is not under submit")
	}
	if work.service != "go-test" || string(work.span.GetParentSpanId()) != string(dispatch.span.GetSpanId()) ||
		work.span.GetKind() != tracepb.Span_SPAN_KIND_CONSUMER {
		t.Fatalf("work span %v kind %v under %x, dispatch %x", work.service, work.span.GetKind(),
			work.span.GetParentSpanId(), dispatch.span.GetSpanId())
	}
	prefix := fmt.Sprintf("00-%s-%s-", tid, hex.EncodeToString(dispatch.span.GetSpanId()))
	if !strings.HasPrefix(j.Traceparent, prefix) {
		t.Fatalf("the worker was handed %q, want the dispatch span %q…", j.Traceparent, prefix)
	}
}
