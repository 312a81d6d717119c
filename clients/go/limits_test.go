package taskhive_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	taskhive "github.com/taskhive/taskhive/clients/go"
)

// eventually polls probe until ok holds for its value, failing the test after waitLong.
func eventually[T any](t *testing.T, what string, probe func() (T, error), ok func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		v, err := probe()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; last: %+v", waitLong, what, v)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func taskStatus(ctx context.Context, c *taskhive.Client, task string) (taskhive.TaskStatus, error) {
	st, err := c.Status(ctx, task)
	if err != nil {
		return taskhive.TaskStatus{}, err
	}
	ts, _ := st.Task(task)
	return ts, nil
}

func TestKeyRoundTripsOnEverySubmitPath(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	get := func(name string) *taskhive.Job {
		t.Helper()
		j, err := c.Get(ctx, "keyed", name)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	if _, err := c.Submit(ctx, "keyed", "one", nil, taskhive.WithKey("acct-1")); err != nil {
		t.Fatal(err)
	}
	if k := get("one").Key; k != "acct-1" {
		t.Fatalf("Get: key %q, want acct-1", k)
	}
	if _, err := c.Submit(ctx, "keyed", "none", nil); err != nil {
		t.Fatal(err)
	}
	if k := get("none").Key; k != "" {
		t.Fatalf("Get of a job without a key: key %q", k)
	}
	if _, err := c.SubmitMany(ctx, []taskhive.Submission{
		{Task: "keyed", Name: "many-1", Opts: []taskhive.SubmitOption{taskhive.WithKey("acct-2")}},
		{Task: "keyed", Name: "many-2", Opts: []taskhive.SubmitOption{taskhive.WithKey("acct-3")}},
	}); err != nil {
		t.Fatal(err)
	}
	if k1, k2 := get("many-1").Key, get("many-2").Key; k1 != "acct-2" || k2 != "acct-3" {
		t.Fatalf("SubmitMany: keys %q %q", k1, k2)
	}
	jobs := make(chan taskhive.Submission, 1)
	jobs <- taskhive.Submission{Task: "keyed", Name: "streamed", Opts: []taskhive.SubmitOption{taskhive.WithKey("acct-4")}}
	close(jobs)
	var acks []taskhive.SubmitAck
	if err := c.SubmitStream(ctx, jobs, func(a taskhive.SubmitAck) { acks = append(acks, a) }); err != nil {
		t.Fatal(err)
	}
	if len(acks) != 1 || acks[0].Err != nil {
		t.Fatalf("SubmitStream acks: %+v", acks)
	}
	if k := get("streamed").Key; k != "acct-4" {
		t.Fatalf("SubmitStream: key %q", k)
	}
	// The server checks the key: at most 255 bytes.
	_, err := c.Submit(ctx, "keyed", "long", nil, taskhive.WithKey(strings.Repeat("k", 256)))
	if !taskhive.IsInvalidArgument(err) || taskhive.ErrorMetadata(err)["field"] != "key" {
		t.Fatalf("a 256-byte key: %v (metadata %v)", err, taskhive.ErrorMetadata(err))
	}

	// RunJob carries the key too, and the worker's Job has it.
	tw := newTestWorker(c)
	tw.Handle("echo-key", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		return taskhive.Done([]byte(j.Key))
	})
	tw.start(t)
	res, err := c.RunJob(ctx, "echo-key", "r1", nil, taskhive.WithKey("acct-5"))
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Result) != "acct-5" {
		t.Fatalf("RunJob: the worker saw key %q", res.Result)
	}
}

func TestSetGetStatusAndClearTaskLimits(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	if l, err := c.GetTaskLimits(ctx, "lim"); err != nil || !l.IsZero() {
		t.Fatalf("limits of a new task: %+v, %v", l, err)
	}
	want := taskhive.TaskLimits{MaxRunning: 5, Rate: "100/s", Burst: 10, MaxRunningPerKey: 2, RatePerKey: "10/5m"}
	got, err := c.SetTaskLimits(ctx, "lim", want)
	if err != nil || got != want {
		t.Fatalf("SetTaskLimits: %+v, %v; want %+v", got, err, want)
	}
	if got, err := c.GetTaskLimits(ctx, "lim"); err != nil || got != want {
		t.Fatalf("GetTaskLimits: %+v, %v; want %+v", got, err, want)
	}
	if _, err := c.Submit(ctx, "lim", "j1", nil); err != nil {
		t.Fatal(err)
	}
	st, err := taskStatus(ctx, c, "lim")
	if err != nil {
		t.Fatal(err)
	}
	if st.Limits == nil || *st.Limits != want || st.WaitingOnLimit != 0 || st.Pending != 1 {
		t.Fatalf("status: %+v (limits %+v)", st, st.Limits)
	}

	// Setting replaces: the limits left zero are gone.
	before := taskhive.TaskLimits{MaxRunning: 3, Rate: "5/s"}
	if got, err := c.SetTaskLimits(ctx, "lim", before); err != nil || got != before {
		t.Fatalf("SetTaskLimits: %+v, %v; want %+v", got, err, before)
	}

	// A bad rate is refused naming the field, and nothing is stored.
	for _, bad := range []string{"0/s", "10/w"} {
		_, err := c.SetTaskLimits(ctx, "lim", taskhive.TaskLimits{MaxRunning: 7, Rate: bad})
		if !taskhive.IsInvalidArgument(err) || taskhive.Reason(err) != taskhive.ReasonInvalidArgument ||
			taskhive.ErrorMetadata(err)["field"] != "rate" {
			t.Fatalf("rate %q: %v (reason %q, metadata %v)", bad, err, taskhive.Reason(err), taskhive.ErrorMetadata(err))
		}
		if got, err := c.GetTaskLimits(ctx, "lim"); err != nil || got != before {
			t.Fatalf("after the refused rate %q: %+v, %v; want %+v", bad, got, err, before)
		}
	}
	_, err = c.SetTaskLimits(ctx, "lim", taskhive.TaskLimits{MaxRunning: -1})
	if !taskhive.IsInvalidArgument(err) || taskhive.ErrorMetadata(err)["field"] != "max_running" {
		t.Fatalf("max_running -1: %v (metadata %v)", err, taskhive.ErrorMetadata(err))
	}

	if err := c.ClearTaskLimits(ctx, "lim"); err != nil {
		t.Fatal(err)
	}
	if got, err := c.GetTaskLimits(ctx, "lim"); err != nil || !got.IsZero() {
		t.Fatalf("after ClearTaskLimits: %+v, %v", got, err)
	}
	if st, err := taskStatus(ctx, c, "lim"); err != nil || st.Limits != nil {
		t.Fatalf("status after ClearTaskLimits: %+v, %v", st.Limits, err)
	}
	// SetTaskLimits with the zero TaskLimits clears too.
	if _, err := c.SetTaskLimits(ctx, "lim", taskhive.TaskLimits{MaxRunning: 1}); err != nil {
		t.Fatal(err)
	}
	if got, err := c.SetTaskLimits(ctx, "lim", taskhive.TaskLimits{}); err != nil || !got.IsZero() {
		t.Fatalf("SetTaskLimits(zero): %+v, %v", got, err)
	}
	if got, err := c.GetTaskLimits(ctx, "lim"); err != nil || !got.IsZero() {
		t.Fatalf("after SetTaskLimits(zero): %+v, %v", got, err)
	}
}

func TestStatusCountsJobsWaitingOnALimit(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	if _, err := c.SetTaskLimits(ctx, "held", taskhive.TaskLimits{MaxRunning: 1}); err != nil {
		t.Fatal(err)
	}
	started := make(chan string, 3)
	release, releaseAll := releaser(t)
	tw := newTestWorker(c, taskhive.WithCapacity(3))
	tw.Handle("held", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		started <- j.Name
		<-release
		return taskhive.Done(nil)
	})
	tw.start(t)
	t.Cleanup(releaseAll) // runs before the worker's cleanup
	for i := range 3 {
		if _, err := c.Submit(ctx, "held", "h"+strconv.Itoa(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	recv(t, started, waitLong, "the first job to start")
	st := eventually(t, "1 running and 2 waiting on the limit",
		func() (taskhive.TaskStatus, error) { return taskStatus(ctx, c, "held") },
		func(s taskhive.TaskStatus) bool { return s.Running == 1 && s.Pending == 2 && s.WaitingOnLimit == 2 })
	if st.Limits == nil || *st.Limits != (taskhive.TaskLimits{MaxRunning: 1}) {
		t.Fatalf("status limits: %+v", st.Limits)
	}
	releaseAll()
	for range 3 {
		tw.report(t, "a done ack")
	}
	if st, err := taskStatus(ctx, c, "held"); err != nil || st.Running != 0 || st.Pending != 0 || st.WaitingOnLimit != 0 {
		t.Fatalf("status after the jobs: %+v, %v", st, err)
	}
}

func TestMaxRunningLimitCapsJobsInFlightBelowWorkerCapacity(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	const limit, jobs, capacity = 2, 8, 8
	if _, err := c.SetTaskLimits(ctx, "capped", taskhive.TaskLimits{MaxRunning: limit}); err != nil {
		t.Fatal(err)
	}
	var inFlight, peak atomic.Int32
	tw := newTestWorker(c, taskhive.WithCapacity(capacity))
	tw.Handle("capped", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // the work
		return taskhive.Done(nil)
	})
	for i := range jobs {
		if _, err := c.Submit(ctx, "capped", "c"+strconv.Itoa(i), nil); err != nil {
			t.Fatal(err)
		}
	}
	tw.start(t)
	for i := range jobs {
		tw.report(t, "done ack "+strconv.Itoa(i))
	}
	if p := peak.Load(); p != limit {
		t.Fatalf("at most %d jobs ran at once; the limit is %d", p, limit)
	}
	if st, err := taskStatus(ctx, c, "capped"); err != nil || st.Pending != 0 || st.Running != 0 {
		t.Fatalf("status after the jobs: %+v, %v", st, err)
	}
}
