package taskhive_test

import (
	"context"
	"testing"
	"time"

	taskhive "github.com/taskhive/taskhive/clients/go"
	"github.com/taskhive/taskhive/clients/go/taskhivetest"
)

// waitLong bounds every wait for something the server or a worker must do.
const waitLong = 20 * time.Second

// recv waits for a value on ch, failing the test after d.
func recv[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %s waiting for %s", d, what)
	}
	var zero T
	return zero
}

// quiet asserts that nothing arrives on ch for d.
func quiet[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(d):
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLong)
	t.Cleanup(cancel)
	return ctx
}

// testWorker is a Worker running in the background, with its reports and connections as channels.
type testWorker struct {
	*taskhive.Worker
	reports   chan taskhive.Report
	connected chan string
	cancel    context.CancelFunc
	result    chan error
}

func newTestWorker(c taskhive.Target, opts ...taskhive.WorkerOption) *testWorker {
	tw := &testWorker{
		reports:   make(chan taskhive.Report, 1000),
		connected: make(chan string, 100),
		result:    make(chan error, 1),
	}
	opts = append([]taskhive.WorkerOption{
		taskhive.WithReportHook(func(r taskhive.Report) { tw.reports <- r }),
		taskhive.WithConnectHook(func(id string) { tw.connected <- id }),
		taskhive.WithReconnectBackoff(20*time.Millisecond, 200*time.Millisecond),
	}, opts...)
	tw.Worker = taskhive.NewWorker(c, opts...)
	return tw
}

// start runs the worker until the test ends (or stop), and waits until it is connected.
func (tw *testWorker) start(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	tw.cancel = cancel
	go func() { tw.result <- tw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-tw.result:
		case <-time.After(waitLong):
			t.Errorf("worker did not stop")
		}
	})
	select {
	case <-tw.connected:
	case err := <-tw.result:
		t.Fatalf("worker stopped before connecting: %v", err)
	case <-time.After(waitLong):
		t.Fatalf("worker did not connect")
	}
}

// stop cancels the worker's context and returns Run's error.
func (tw *testWorker) stop(t *testing.T) error {
	t.Helper()
	tw.cancel()
	select {
	case err := <-tw.result:
		tw.result <- err // for the cleanup
		return err
	case <-time.After(waitLong):
		t.Fatalf("Run did not return after cancellation")
	}
	return nil
}

// report waits for the next report and checks it was applied.
func (tw *testWorker) report(t *testing.T, what string) taskhive.Report {
	t.Helper()
	r := recv(t, tw.reports, waitLong, what)
	if r.Err != nil {
		t.Fatalf("%s: outcome %v of %s/%s not applied: %v", what, r.Outcome, r.Job.Task, r.Job.Name, r.Err)
	}
	return r
}

func startServer(t *testing.T) (*taskhivetest.Server, *taskhive.Client) {
	t.Helper()
	srv := taskhivetest.Start(t)
	return srv, srv.Client(t)
}
