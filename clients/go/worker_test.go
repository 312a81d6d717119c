package taskhive_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	taskhive "github.com/taskhive/taskhive/clients/go"
	"github.com/taskhive/taskhive/clients/go/taskhivetest"
)

// The test binary doubles as a worker process (TestWorkerKilledMidJob kills it).
const childEnv = "TASKHIVE_GO_TEST_CHILD_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		os.Exit(childWorker())
	}
	os.Exit(m.Run())
}

// childWorker serves $TASKHIVE_ADDR: for each job of "slow" it prints
// "started NAME LEASE" and holds the job until it is killed.
func childWorker() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	w := taskhive.NewWorker(taskhive.Addr(os.Getenv("TASKHIVE_ADDR")),
		taskhive.WithConnectHook(func(id string) { say("connected %s", id) }))
	w.Handle("slow", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		say("started %s %d", j.Name, j.LeaseID)
		<-ctx.Done()
		return taskhive.Fail(ctx.Err())
	})
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestSubmitThenWorkerDone(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	// Submitted before any worker: it waits as pending.
	res, err := c.Submit(ctx, "greet", "hello", []byte("world"))
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan *taskhive.Job, 10)
	tw := newTestWorker(c, taskhive.WithWorkerName("greeter"))
	tw.Handle("greet", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		seen <- j
		return taskhive.Done([]byte("hi " + string(j.Args)))
	})
	tw.start(t)

	j := recv(t, seen, waitLong, "the job at the worker")
	if j.ID != res.JobID || j.Task != "greet" || j.Name != "hello" || string(j.Args) != "world" ||
		j.LeaseID == 0 || j.Timeout <= 0 || j.Attempts != 0 {
		t.Fatalf("handler got %+v", j)
	}
	r := tw.report(t, "the done ack")
	if !r.Outcome.IsDone() || string(r.Outcome.Result()) != "hi world" || r.Job.ID != res.JobID {
		t.Fatalf("report %+v", r)
	}
	// Done jobs are deleted.
	if _, err := c.Get(ctx, "greet", "hello"); !taskhive.IsNotFound(err) {
		t.Fatalf("job after done: %v", err)
	}
	st, err := c.Status(ctx, "greet")
	if err != nil {
		t.Fatal(err)
	}
	if gs, _ := st.Task("greet"); gs.Workers != 1 || gs.Pending+gs.Running+gs.Scheduled+gs.Dead != 0 {
		t.Fatalf("status: %+v", gs)
	}
}

func TestSchedLaterRepeats(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	type seenRun struct {
		name  string
		count uint32
		at    time.Time
	}
	runs := make(chan seenRun, 100)
	tw := newTestWorker(c, taskhive.WithCapacity(2))
	tw.Handle("tick", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		runs <- seenRun{j.Name, j.RunCount, time.Now()}
		if j.RunCount >= 3 {
			return taskhive.Done(nil)
		}
		if j.Name == "step" {
			return taskhive.SchedLaterStep(30*time.Millisecond, 2)
		}
		return taskhive.SchedLater(30 * time.Millisecond)
	})
	tw.start(t)
	if _, err := c.Submit(ctx, "tick", "one", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Submit(ctx, "tick", "step", nil); err != nil {
		t.Fatal(err)
	}
	counts := map[string][]uint32{}
	last := map[string]time.Time{}
	for range 4 + 3 { // one: 0 1 2 3; step: 0 2 4
		r := recv(t, runs, waitLong, "a run")
		if prev, ok := last[r.name]; ok && r.at.Sub(prev) < 25*time.Millisecond {
			t.Errorf("%s ran again after %s, before its 30ms delay", r.name, r.at.Sub(prev))
		}
		last[r.name] = r.at
		counts[r.name] = append(counts[r.name], r.count)
	}
	if got := fmt.Sprint(counts["one"]); got != "[0 1 2 3]" {
		t.Errorf("run counts of one: %s", got)
	}
	if got := fmt.Sprint(counts["step"]); got != "[0 2 4]" {
		t.Errorf("run counts of step: %s", got)
	}
	done := 0
	for range 4 + 3 {
		if r := tw.report(t, "an applied outcome"); r.Outcome.IsDone() {
			done++
		}
	}
	if done != 2 {
		t.Errorf("%d jobs done, want 2", done)
	}
	quiet(t, runs, 100*time.Millisecond, "run after done")
}

func TestFailRetriesThenDead(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	type attempt struct {
		n  uint32
		at time.Time
	}
	attempts := make(chan attempt, 10)
	tw := newTestWorker(c)
	tw.Handle("flaky", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		attempts <- attempt{j.Attempts, time.Now()}
		return taskhive.Fail(fmt.Errorf("attempt %d failed", j.Attempts+1))
	})
	tw.start(t)
	_, err := c.Submit(ctx, "flaky", "job", []byte("x"),
		taskhive.WithRetry(taskhive.RetryPolicy{MaxAttempts: 3, BackoffBase: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond}))
	if err != nil {
		t.Fatal(err)
	}
	var prev time.Time
	for i := range uint32(3) {
		a := recv(t, attempts, waitLong, fmt.Sprintf("attempt %d", i+1))
		if a.n != i {
			t.Fatalf("attempt %d saw attempts=%d", i+1, a.n)
		}
		// Equal jitter: at least half of base*2^(i-1).
		if i > 0 {
			minGap := (50 * time.Millisecond << (i - 1)) / 2
			if gap := a.at.Sub(prev); gap < minGap-5*time.Millisecond {
				t.Errorf("attempt %d came %s after the previous, before its backoff (%s)", i+1, gap, minGap)
			}
		}
		prev = a.at
		if r := tw.report(t, "the fail ack"); !r.Outcome.IsFail() {
			t.Fatalf("outcome %v", r.Outcome)
		}
	}
	// The third failure used up the attempts: dead, not retried.
	dead, err := c.ListDead(ctx, "flaky", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 1 || dead[0].Name != "job" || dead[0].Attempts != 3 || dead[0].LastError != "attempt 3 failed" {
		t.Fatalf("dead set: %+v", dead)
	}
	j, err := c.Get(ctx, "flaky", "job")
	if err != nil || j.State != taskhive.StateDead {
		t.Fatalf("job: %+v, %v", j, err)
	}
	quiet(t, attempts, 200*time.Millisecond, "attempt after the retry cap")
}

func TestRunJob(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	// No worker for the task yet.
	_, err := c.RunJob(ctx, "echo", "first", []byte("x"))
	if !taskhive.IsNoWorker(err) || status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("RunJob without worker: %v (code %v)", err, status.Code(err))
	}
	if !strings.Contains(err.Error(), "no worker for task echo") {
		t.Fatalf("message: %v", err)
	}

	tw := newTestWorker(c)
	tw.Handle("echo", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		if string(j.Args) == "boom" {
			return taskhive.Fail(errors.New("cannot echo boom"))
		}
		return taskhive.Done(append([]byte("echo:"), j.Args...))
	})
	tw.start(t)

	res, err := c.RunJob(ctx, "echo", "second", []byte("ping"))
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Result) != "echo:ping" || res.JobID == 0 {
		t.Fatalf("RunJob result: %+v", res)
	}
	_, err = c.RunJob(ctx, "echo", "third", []byte("boom"))
	if !taskhive.IsJobFailed(err) || status.Code(err) != codes.Aborted || taskhive.IsNoWorker(err) {
		t.Fatalf("RunJob of a failing job: %v (code %v)", err, status.Code(err))
	}
	if !strings.Contains(err.Error(), "cannot echo boom") {
		t.Fatalf("the worker's error is not in %q", err)
	}
}

func TestWorkerKilledMidJobIsRedelivered(t *testing.T) {
	srv, c := startServer(t)
	ctx := ctxT(t)

	// The first worker is a separate process, so that it can be SIGKILLed.
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), childEnv+"=1", "TASKHIVE_ADDR="+srv.Addr)
	taskhivetest.KillWithParent(child)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = child.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = child.Process.Kill()
		<-exited
	})
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := recv(t, lines, waitLong, "the child worker to connect"); !strings.HasPrefix(l, "connected ") {
		t.Fatalf("child said %q", l)
	}
	res, err := c.Submit(ctx, "slow", "job", []byte("payload"))
	if err != nil {
		t.Fatal(err)
	}
	l := recv(t, lines, waitLong, "the child worker to start the job")
	var name string
	var lease uint64
	if _, err := fmt.Sscanf(l, "started %s %d", &name, &lease); err != nil || name != "job" {
		t.Fatalf("child said %q", l)
	}
	j, err := c.Get(ctx, "slow", "job")
	if err != nil || j.State != taskhive.StateRunning {
		t.Fatalf("job while the child holds it: %+v, %v", j, err)
	}

	// Kill the child while it holds the job; a second worker gets it again.
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	recv(t, exited, waitLong, "the child to die")
	second := make(chan *taskhive.Job, 1)
	tw := newTestWorker(c)
	tw.Handle("slow", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		second <- j
		return taskhive.Done([]byte("finally"))
	})
	tw.start(t)
	j = recv(t, second, waitLong, "the job redelivered to the second worker")
	if j.ID != res.JobID || string(j.Args) != "payload" || j.LeaseID == lease || j.Attempts != 1 {
		t.Fatalf("redelivered job: %+v (first lease %d)", j, lease)
	}
	if r := tw.report(t, "the redelivered job's ack"); !r.Outcome.IsDone() {
		t.Fatalf("report: %+v", r)
	}
}

func TestCapacityIsRespected(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	const capacity, jobs = 3, 12
	var inFlight, peak atomic.Int32
	started := make(chan string, jobs)
	release, releaseAll := releaser(t)
	tw := newTestWorker(c, taskhive.WithCapacity(capacity))
	tw.Handle("batch", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started <- j.Name
		<-release
		inFlight.Add(-1)
		return taskhive.Done(nil)
	})
	tw.start(t)
	t.Cleanup(releaseAll) // runs before the worker's cleanup
	for i := range jobs {
		if _, err := c.Submit(ctx, "batch", "job-"+strconv.Itoa(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	for range capacity {
		recv(t, started, waitLong, "a job to start")
	}
	// Full: no fourth job starts, and the server holds the rest back.
	quiet(t, started, 300*time.Millisecond, "job start beyond capacity")
	st, err := c.Status(ctx, "batch")
	if err != nil {
		t.Fatal(err)
	}
	if bs, _ := st.Task("batch"); bs.Running != capacity || bs.Pending != jobs-capacity {
		t.Fatalf("status while full: %+v", bs)
	}
	releaseAll()
	for range jobs - capacity {
		recv(t, started, waitLong, "the remaining jobs to start")
	}
	for range jobs {
		tw.report(t, "a done ack")
	}
	if p := peak.Load(); p != capacity {
		t.Fatalf("peak concurrency %d, want %d", p, capacity)
	}
}

func TestGracefulStopFinishesInFlight(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	started := make(chan struct{}, 10)
	release, releaseAll := releaser(t)
	handlerErr := make(chan error, 10)
	tw := newTestWorker(c, taskhive.WithCapacity(2), taskhive.WithGracePeriod(waitLong))
	tw.Handle("long", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		started <- struct{}{}
		<-release
		handlerErr <- ctx.Err() // not cancelled within the grace period
		return taskhive.Done([]byte(j.Name))
	})
	tw.start(t)
	t.Cleanup(releaseAll) // runs before the worker's cleanup
	for _, n := range []string{"a", "b", "c"} {
		if _, err := c.Submit(ctx, "long", n, nil); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, started, waitLong, "the first job to start")
	recv(t, started, waitLong, "the second job to start")

	tw.cancel()
	// Run waits for the running handlers.
	quiet(t, tw.result, 200*time.Millisecond, "Run returning while handlers run")
	releaseAll()
	if err := recv(t, tw.result, waitLong, "Run to return"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	tw.result <- nil
	for range 2 {
		if err := recv(t, handlerErr, time.Second, "a handler's end"); err != nil {
			t.Fatalf("handler context cancelled during the grace period: %v", err)
		}
		if r := tw.report(t, "an in-flight job reported after stop"); !r.Outcome.IsDone() {
			t.Fatalf("report: %+v", r)
		}
	}
	quiet(t, started, 100*time.Millisecond, "a job starting after stop")
	// Two done and deleted; the third was never started and waits for a worker.
	st, err := c.Status(ctx, "long")
	if err != nil {
		t.Fatal(err)
	}
	if ls, _ := st.Task("long"); ls.Pending != 1 || ls.Running != 0 || ls.Workers != 0 {
		t.Fatalf("status after stop: %+v", ls)
	}
}

func TestGracePeriodCancelsHandlers(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	started := make(chan struct{}, 1)
	tw := newTestWorker(c, taskhive.WithGracePeriod(100*time.Millisecond))
	tw.Handle("stuck", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		started <- struct{}{}
		<-ctx.Done()
		return taskhive.Fail(ctx.Err())
	})
	tw.start(t)
	if _, err := c.Submit(ctx, "stuck", "job", nil); err != nil {
		t.Fatal(err)
	}
	recv(t, started, waitLong, "the job to start")
	t0 := time.Now()
	if err := tw.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if d := time.Since(t0); d < 90*time.Millisecond {
		t.Fatalf("Run returned after %s, before the grace period", d)
	}
	r := tw.report(t, "the cancelled job's report")
	if !r.Outcome.IsFail() || !strings.Contains(r.Outcome.Err(), "context canceled") {
		t.Fatalf("report: %+v", r)
	}
	j, err := c.Get(ctx, "stuck", "job")
	if err != nil || j.Attempts != 1 || j.State == taskhive.StateRunning {
		t.Fatalf("job after stop: %+v, %v", j, err)
	}
}

func TestPanicIsReportedAsFail(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	tw := newTestWorker(c)
	tw.Handle("crashy", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		var m map[string]int
		m["boom"]++ // nil map write: panics
		return taskhive.Done(nil)
	})
	tw.start(t)
	if _, err := c.Submit(ctx, "crashy", "job", nil, taskhive.WithRetry(taskhive.RetryPolicy{MaxAttempts: 1})); err != nil {
		t.Fatal(err)
	}
	r := tw.report(t, "the panic's report")
	if !r.Outcome.IsFail() || !strings.Contains(r.Outcome.Err(), "panic") {
		t.Fatalf("report: %+v", r)
	}
	dead, err := c.ListDead(ctx, "crashy", 0)
	if err != nil || len(dead) != 1 || !strings.Contains(dead[0].LastError, "assignment to entry in nil map") {
		t.Fatalf("dead: %+v, %v", dead, err)
	}
	// The worker survived and still serves.
	res, err := c.RunJob(ctx, "crashy", "again", nil, taskhive.WithRetry(taskhive.RetryPolicy{MaxAttempts: 1}))
	if !taskhive.IsJobFailed(err) || res != nil {
		t.Fatalf("second run: %+v, %v", res, err)
	}
}

func TestWorkerReconnectsAfterServerRestart(t *testing.T) {
	srv, c := startServer(t)
	ctx := ctxT(t)

	seen := make(chan string, 10)
	tw := newTestWorker(c)
	tw.Handle("again", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		seen <- j.Name
		return taskhive.Done(nil)
	})
	tw.start(t)
	if _, err := c.Submit(ctx, "again", "before", nil); err != nil {
		t.Fatal(err)
	}
	recv(t, seen, waitLong, "the job before the restart")
	tw.report(t, "the first ack")

	srv.Kill()
	srv.Restart(t)
	recv(t, tw.connected, waitLong, "the worker to reconnect")
	if _, err := c.Submit(ctx, "again", "after", nil); err != nil {
		t.Fatal(err)
	}
	if n := recv(t, seen, waitLong, "the job after the restart"); n != "after" {
		t.Fatalf("got %q", n)
	}
	tw.report(t, "the second ack")
}

func TestHeartbeatsKeepLongJobs(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	runs := make(chan *taskhive.Job, 10)
	tw := newTestWorker(c)
	tw.Handle("long", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		runs <- j
		// Work for three lease lengths.
		select {
		case <-time.After(3 * j.Timeout):
		case <-ctx.Done():
			return taskhive.Fail(ctx.Err())
		}
		return taskhive.Done(nil)
	})
	tw.start(t)
	if _, err := c.Submit(ctx, "long", "job", nil, taskhive.WithTimeout(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	j := recv(t, runs, waitLong, "the job")
	if j.Timeout != 500*time.Millisecond {
		t.Fatalf("timeout %s", j.Timeout)
	}
	if r := tw.report(t, "the long job's ack"); !r.Outcome.IsDone() {
		t.Fatalf("report: %+v", r)
	}
	quiet(t, runs, 100*time.Millisecond, "a second run (the lease was lost)")
}

func TestHandleWhileRunning(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	tw := newTestWorker(c)
	tw.Handle("first", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome { return taskhive.Done(nil) })
	tw.start(t)
	tw.Handle("second", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		return taskhive.Done([]byte("late handler"))
	})
	// The new task is announced on the running stream: its pending job runs.
	if _, err := c.Submit(ctx, "second", "job", nil); err != nil {
		t.Fatal(err)
	}
	r := tw.report(t, "the late handler's job")
	if r.Job.Task != "second" || string(r.Outcome.Result()) != "late handler" {
		t.Fatalf("report: %+v", r)
	}
	st, err := c.Status(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	if ss, _ := st.Task("second"); ss.Workers != 1 {
		t.Fatalf("status: %+v", ss)
	}
}

func TestRunRefusesWithoutHandlers(t *testing.T) {
	w := taskhive.NewWorker(taskhive.Addr("127.0.0.1:1"))
	if err := w.Run(context.Background()); !taskhive.IsInvalidArgument(err) {
		t.Fatalf("Run without handlers: %v", err)
	}
}

// releaser is a channel closed once, by the test or at its end (so that a
// failed test never leaves handlers blocked).
func releaser(t *testing.T) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(ch) }) }
	t.Cleanup(release)
	return ch, release
}

func TestCapacityHoldsAcrossReconnect(t *testing.T) {
	srv, c := startServer(t)
	ctx := ctxT(t)

	var inFlight, peak atomic.Int32
	var calls atomic.Int32
	started := make(chan int32, 10)
	cancelled := make(chan struct{}, 10)
	release, releaseAll := releaser(t)
	tw := newTestWorker(c, taskhive.WithCapacity(1))
	tw.Handle("hold", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		if p := peak.Load(); n > p {
			peak.Store(n)
		}
		call := calls.Add(1)
		started <- call
		if call == 1 {
			// Ignores the cancellation for a while: still running after the stream broke.
			<-ctx.Done()
			cancelled <- struct{}{}
			<-release
		}
		return taskhive.Done(nil)
	})
	tw.start(t)
	t.Cleanup(releaseAll) // runs before the worker's cleanup
	if _, err := c.Submit(ctx, "hold", "job", nil); err != nil {
		t.Fatal(err)
	}
	recv(t, started, waitLong, "the first run")
	srv.Kill()
	recv(t, cancelled, waitLong, "the handler's context to be cancelled when the stream broke")
	srv.Restart(t)
	recv(t, tw.connected, waitLong, "the worker to reconnect")
	// The server hands the job out again (its lease died with the server), but
	// the worker's only slot is still taken by the first handler.
	quiet(t, started, 300*time.Millisecond, "a run beyond capacity")
	releaseAll()
	lost := recv(t, tw.reports, waitLong, "the first run's report")
	if !errors.Is(lost.Err, taskhive.ErrLeaseLost) {
		t.Fatalf("first run's report: %+v", lost)
	}
	if call := recv(t, started, waitLong, "the second run"); call != 2 {
		t.Fatalf("call %d", call)
	}
	tw.report(t, "the second run's ack")
	if p := peak.Load(); p != 1 {
		t.Fatalf("peak concurrency %d with capacity 1", p)
	}
}

func TestStopWaitsForHandlersOfBrokenStream(t *testing.T) {
	srv, c := startServer(t)
	ctx := ctxT(t)

	started := make(chan struct{}, 1)
	cancelled := make(chan struct{}, 1)
	release, releaseAll := releaser(t)
	tw := newTestWorker(c, taskhive.WithGracePeriod(waitLong))
	tw.Handle("hold", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		started <- struct{}{}
		<-ctx.Done()
		cancelled <- struct{}{}
		<-release
		return taskhive.Done(nil)
	})
	tw.start(t)
	t.Cleanup(releaseAll) // runs before the worker's cleanup
	if _, err := c.Submit(ctx, "hold", "job", nil); err != nil {
		t.Fatal(err)
	}
	recv(t, started, waitLong, "the run")
	srv.Kill()
	recv(t, cancelled, waitLong, "the handler's context to be cancelled when the stream broke")
	tw.cancel()
	quiet(t, tw.result, 200*time.Millisecond, "Run returning while a handler runs")
	releaseAll()
	if err := recv(t, tw.result, waitLong, "Run to return"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	tw.result <- nil
	if r := recv(t, tw.reports, waitLong, "the report"); !errors.Is(r.Err, taskhive.ErrLeaseLost) {
		t.Fatalf("report: %+v", r)
	}
}

func TestBroadcastGoesToEveryWorker(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	got := make(chan string, 10)
	var workers []*testWorker
	for _, name := range []string{"w1", "w2"} {
		tw := newTestWorker(c)
		tw.HandleBroadcast("reload", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
			got <- name + ":" + j.Name
			return taskhive.Done(nil)
		})
		tw.start(t)
		workers = append(workers, tw)
	}
	if _, err := c.Submit(ctx, "reload", "config", nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for range 2 {
		seen[recv(t, got, waitLong, "the broadcast job at each worker")] = true
	}
	if !seen["w1:config"] || !seen["w2:config"] {
		t.Fatalf("runs: %v", seen)
	}
	for _, tw := range workers {
		tw.report(t, "each worker's ack")
	}
	st, err := c.Status(ctx, "reload")
	if err != nil {
		t.Fatal(err)
	}
	if rs, _ := st.Task("reload"); !rs.Broadcast || rs.Workers != 2 {
		t.Fatalf("status: %+v", rs)
	}
}

func TestRemovedRunningJobCancelsHandler(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	tw := newTestWorker(c)
	tw.Handle("cancel-me", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		started <- struct{}{}
		<-ctx.Done() // the server's CancelJob (heartbeats run as well: a 150 ms lease)
		ended <- ctx.Err()
		return taskhive.Done(nil)
	})
	tw.start(t)
	if _, err := c.Submit(ctx, "cancel-me", "job", nil, taskhive.WithTimeout(150*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	recv(t, started, waitLong, "the job to start")
	if _, err := c.Remove(ctx, "cancel-me", "job"); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, ended, waitLong, "the handler's context to be cancelled"); !errors.Is(err, context.Canceled) {
		t.Fatalf("handler context: %v", err)
	}
	if r := recv(t, tw.reports, waitLong, "the report"); !errors.Is(r.Err, taskhive.ErrJobCancelled) {
		t.Fatalf("report: %+v", r)
	}
}

func TestRemovingARunningJobCancelsItsContextWithTheCause(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	started := make(chan string, 10)
	causes := make(chan error, 1)
	// Capacity 1: the next job runs only once the cancelled one freed its slot.
	tw := newTestWorker(c)
	tw.Handle("long", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		started <- j.Name
		if j.Name == "next" {
			return taskhive.Done(nil)
		}
		<-ctx.Done()
		causes <- context.Cause(ctx)
		return taskhive.Done([]byte("not applied"))
	})
	tw.start(t)

	if _, err := c.Submit(ctx, "long", "first", nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, started, waitLong, "the first job at the worker"); got != "first" {
		t.Fatalf("started %q", got)
	}
	id, err := c.Remove(ctx, "long", "first")
	if err != nil {
		t.Fatal(err)
	}
	cause := recv(t, causes, waitLong, "the handler's context to be cancelled")
	var ce *taskhive.CancelledError
	if !errors.Is(cause, taskhive.ErrJobCancelled) || !errors.As(cause, &ce) || ce.JobID != id || ce.Reason == "" {
		t.Fatalf("cause %#v (%v), want a *CancelledError of job %d", cause, cause, id)
	}
	r := recv(t, tw.reports, waitLong, "the cancelled job's report")
	if !errors.Is(r.Err, taskhive.ErrJobCancelled) || r.Job.ID != id || string(r.Outcome.Result()) != "not applied" {
		t.Fatalf("report %+v", r)
	}

	if _, err := c.Submit(ctx, "long", "next", nil); err != nil {
		t.Fatal(err)
	}
	if got := recv(t, started, waitLong, "the next job at the worker"); got != "next" {
		t.Fatalf("started %q", got)
	}
	if r := tw.report(t, "the next job's ack"); r.Job.Name != "next" {
		t.Fatalf("report %+v", r)
	}
	if _, err := c.Get(ctx, "long", "first"); !taskhive.IsNotFound(err) {
		t.Fatalf("removed job: %v", err)
	}
}
