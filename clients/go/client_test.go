package taskhive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	taskhive "github.com/taskhive/taskhive/clients/go"
	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

func TestClientSubmitGetRemoveStatusDrop(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	at := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	r, err := c.Submit(ctx, "mail", "welcome", []byte("to: a@b"),
		taskhive.WithSchedAt(at), taskhive.WithTimeout(30*time.Second), taskhive.WithPriority(7),
		taskhive.WithRetry(taskhive.RetryPolicy{MaxAttempts: 3, BackoffBase: 50 * time.Millisecond, BackoffMax: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	if r.JobID == 0 || r.Replaced || r.Running {
		t.Fatalf("first submit: %+v", r)
	}
	j, err := c.Get(ctx, "mail", "welcome")
	if err != nil {
		t.Fatal(err)
	}
	if j.ID != r.JobID || !bytes.Equal(j.Args, []byte("to: a@b")) || !j.SchedAt.Equal(at) ||
		j.Timeout != 30*time.Second || j.Priority != 7 || j.State != taskhive.StateScheduled ||
		j.Retry.MaxAttempts != 3 || j.Retry.BackoffBase != 50*time.Millisecond || j.Retry.BackoffMax != time.Second {
		t.Fatalf("job as stored: %+v", j)
	}
	if j2, err := c.GetByID(ctx, r.JobID); err != nil || j2.Name != "welcome" {
		t.Fatalf("GetByID: %+v, %v", j2, err)
	}

	// Same task and name: replaced.
	r2, err := c.Submit(ctx, "mail", "welcome", []byte("v2"))
	if err != nil {
		t.Fatal(err)
	}
	if !r2.Replaced {
		t.Fatalf("resubmit did not replace: %+v", r2)
	}
	if j, err = c.Get(ctx, "mail", "welcome"); err != nil || string(j.Args) != "v2" || j.State != taskhive.StatePending {
		t.Fatalf("replaced job: %+v, %v", j, err)
	}
	if _, err := c.Submit(ctx, "mail", "later", nil, taskhive.WithDelay(time.Minute)); err != nil {
		t.Fatal(err)
	}

	st, err := c.Status(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	ms, ok := st.Task("mail")
	if !ok || ms.Pending != 1 || ms.Scheduled != 1 || ms.Workers != 0 {
		t.Fatalf("status of mail: %+v (listed %v)", ms, ok)
	}
	if st.Totals.Pending != 1 || st.Totals.Scheduled != 1 || st.Totals.NextSchedAt.IsZero() {
		t.Fatalf("totals: %+v", st.Totals)
	}

	id, err := c.Remove(ctx, "mail", "welcome")
	if err != nil || id != r2.JobID {
		t.Fatalf("remove: %d, %v (want %d)", id, err, r2.JobID)
	}
	_, err = c.Get(ctx, "mail", "welcome")
	if !taskhive.IsNotFound(err) || status.Code(err) != codes.NotFound {
		t.Fatalf("get after remove: %v (code %v)", err, status.Code(err))
	}
	if _, err := c.Remove(ctx, "mail", "welcome"); !taskhive.IsNotFound(err) {
		t.Fatalf("second remove: %v", err)
	}

	n, err := c.Drop(ctx, "mail")
	if err != nil || n != 1 {
		t.Fatalf("drop: %d, %v", n, err)
	}
	if st, err = c.Status(ctx, "mail"); err != nil {
		t.Fatal(err)
	}
	if ms, _ := st.Task("mail"); ms.Pending+ms.Scheduled != 0 {
		t.Fatalf("after drop: %+v", ms)
	}
}

func TestClientErrorsKeepStatusCodes(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	_, err := c.Submit(ctx, "", "x", nil)
	if !taskhive.IsInvalidArgument(err) || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty task: %v (code %v)", err, status.Code(err))
	}
	if s, ok := status.FromError(err); !ok || s.Code() != codes.InvalidArgument {
		t.Fatalf("status.FromError: %v %v", s, ok)
	}
	_, err = c.Submit(ctx, "t", "x", nil, taskhive.WithTimeout(0))
	if !taskhive.IsInvalidArgument(err) {
		t.Fatalf("zero timeout: %v", err)
	}

	// A job running elsewhere: the worker registers, so Drop is refused.
	tw := newTestWorker(c)
	tw.Handle("busy", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome { return taskhive.Done(nil) })
	tw.start(t)
	_, err = c.Drop(ctx, "busy")
	if status.Code(err) != codes.FailedPrecondition || taskhive.IsNoWorker(err) {
		t.Fatalf("drop with a worker: %v (code %v)", err, status.Code(err))
	}
	if !taskhive.IsWorkersPresent(err) || taskhive.ErrorMetadata(err)["task"] != "busy" {
		t.Fatalf("drop with a worker: reason %q %v", taskhive.Reason(err), taskhive.ErrorMetadata(err))
	}
}

func TestErrorsCarryTheServersReason(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	_, err := c.RunJob(ctx, "nobody", "x", nil)
	if !taskhive.IsNoWorker(err) || taskhive.Reason(err) != taskhive.ReasonNoWorker {
		t.Fatalf("no worker: %v (reason %q)", err, taskhive.Reason(err))
	}
	if taskhive.ErrorMetadata(err)["task"] != "nobody" {
		t.Fatalf("no worker metadata: %v", taskhive.ErrorMetadata(err))
	}

	// A result for a lease the server never handed out.
	_, err = c.RPC().ReportResult(ctx, &pb.ReportResultRequest{
		LeaseId: 77,
		Outcome: &pb.Outcome{Outcome: &pb.Outcome_Done{Done: &pb.Done{}}},
	})
	if !taskhive.IsStaleLease(err) || taskhive.IsNoWorker(err) {
		t.Fatalf("stale lease: %v (reason %q)", err, taskhive.Reason(err))
	}
	if md := taskhive.ErrorMetadata(err); md["lease"] != "77" || md["cause"] != "ended" {
		t.Fatalf("stale lease metadata: %v", md)
	}

	tw := newTestWorker(c)
	tw.Handle("held", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome { return taskhive.Done(nil) })
	tw.start(t)
	_, err = c.Drop(ctx, "held")
	if !taskhive.IsWorkersPresent(err) || taskhive.IsStaleLease(err) {
		t.Fatalf("workers present: %v (reason %q)", err, taskhive.Reason(err))
	}

	// A refusal keeps its reason through the client's wrapping; a message alone has none.
	_, err = c.Submit(ctx, "", "x", nil)
	if taskhive.Reason(err) != taskhive.ReasonInvalidArgument || taskhive.ErrorMetadata(err)["field"] != "task" {
		t.Fatalf("invalid argument: reason %q %v", taskhive.Reason(err), taskhive.ErrorMetadata(err))
	}
	if taskhive.IsNoWorker(status.Error(codes.FailedPrecondition, "no worker for task x")) {
		t.Fatal("IsNoWorker matched a message")
	}
}

func TestDialUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	// Port 1 on loopback: nothing listens there.
	_, err := taskhive.Dial(ctx, "127.0.0.1:1")
	if err == nil {
		t.Fatal("dial succeeded")
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("dial error %v has code %v", err, status.Code(err))
	}
	c, err := taskhive.Dial(ctx, "127.0.0.1:1", taskhive.WithLazyConnect())
	if err != nil {
		t.Fatalf("lazy dial: %v", err)
	}
	defer c.Close()
	_, err = c.Status(context.Background(), "")
	if !taskhive.IsUnavailable(err) {
		t.Fatalf("call on unreachable server: %v", err)
	}
}

func TestDeadSetListRetryPurge(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	tw := newTestWorker(c, taskhive.WithCapacity(4))
	tw.Handle("fragile", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		if string(j.Args) == "ok" {
			return taskhive.Done(nil)
		}
		return taskhive.FailNoRetry(errors.New("bad input " + j.Name))
	})
	tw.start(t)
	for _, name := range []string{"a", "b", "c"} {
		if _, err := c.Submit(ctx, "fragile", name, []byte("bad")); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		r := tw.report(t, "a no-retry failure")
		if !r.Outcome.IsFail() {
			t.Fatalf("outcome %v", r.Outcome)
		}
	}
	dead, err := c.ListDead(ctx, "fragile", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 3 {
		t.Fatalf("dead: %d jobs, want 3", len(dead))
	}
	for _, j := range dead {
		if j.State != taskhive.StateDead || j.LastError != "bad input "+j.Name || j.Attempts != 1 {
			t.Fatalf("dead job: %+v", j)
		}
	}
	if lim, err := c.ListDead(ctx, "", 2); err != nil || len(lim) != 2 {
		t.Fatalf("limit 2: %d, %v", len(lim), err)
	}

	// A resubmit of a dead job (same task and name) replaces and revives it.
	if _, err := c.Submit(ctx, "fragile", "a", []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if r := tw.report(t, "the resubmitted job"); !r.Outcome.IsDone() || r.Job.Name != "a" {
		t.Fatalf("resubmitted: job %+v outcome %v", r.Job, r.Outcome)
	}
	// RetryDead moves one dead job back to pending, attempts reset.
	n, err := c.RetryDead(ctx, "fragile", "b")
	if err != nil || n != 1 {
		t.Fatalf("retry b: %d, %v", n, err)
	}
	r := tw.report(t, "the retried job")
	if r.Job.Name != "b" || r.Job.Attempts != 0 || !r.Outcome.IsFail() {
		t.Fatalf("retried: job %+v outcome %v", r.Job, r.Outcome)
	}
	n, err = c.PurgeDead(ctx, "fragile", "")
	if err != nil || n != 2 {
		t.Fatalf("purge: %d, %v (want 2: b and c)", n, err)
	}
	if dead, err = c.ListDead(ctx, "", 0); err != nil || len(dead) != 0 {
		t.Fatalf("after purge: %d, %v", len(dead), err)
	}
	st, err := c.Status(ctx, "fragile")
	if err != nil {
		t.Fatal(err)
	}
	if fs, _ := st.Task("fragile"); fs.Dead != 0 || fs.Pending != 0 || fs.Running != 0 {
		t.Fatalf("status after purge: %+v", fs)
	}
}

func TestSubmitManyAllOrNothing(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	rs, err := c.SubmitMany(ctx, []taskhive.Submission{
		{Task: "batch", Name: "a", Args: []byte("1")},
		{Task: "batch", Name: "b", Opts: []taskhive.SubmitOption{taskhive.WithDelay(time.Minute)}},
		{Task: "batch", Name: "a", Args: []byte("2")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 || rs[0].JobID == rs[1].JobID || rs[2].JobID != rs[0].JobID || !rs[2].Replaced {
		t.Fatalf("answers: %+v %+v %+v", rs[0], rs[1], rs[2])
	}
	if j, err := c.Get(ctx, "batch", "a"); err != nil || string(j.Args) != "2" {
		t.Fatalf("batch/a: %+v, %v", j, err)
	}
	if j, err := c.Get(ctx, "batch", "b"); err != nil || j.State != taskhive.StateScheduled {
		t.Fatalf("batch/b: %+v, %v", j, err)
	}

	_, err = c.SubmitMany(ctx, []taskhive.Submission{{Task: "batch", Name: "c"}, {Task: "", Name: "d"}})
	if !taskhive.IsInvalidArgument(err) || !strings.Contains(err.Error(), "[1].task") {
		t.Fatalf("invalid batch: %v", err)
	}
	if _, err := c.Get(ctx, "batch", "c"); !taskhive.IsNotFound(err) {
		t.Fatalf("batch/c after a rejected batch: %v", err)
	}
}

func TestSubmitStreamAcksInOrderAndGoesOnPastABadJob(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	const n = 3000
	jobs := make(chan taskhive.Submission)
	go func() {
		defer close(jobs)
		for i := 0; i < n; i++ {
			s := taskhive.Submission{Task: "gostream", Name: fmt.Sprintf("g%d", i), Args: []byte(fmt.Sprint(i))}
			if i == 1234 {
				s.Opts = []taskhive.SubmitOption{taskhive.WithTimeout(-time.Second)}
			}
			jobs <- s
		}
	}()
	var acks []taskhive.SubmitAck
	if err := c.SubmitStream(ctx, jobs, func(a taskhive.SubmitAck) { acks = append(acks, a) }); err != nil {
		t.Fatal(err)
	}
	if len(acks) != n {
		t.Fatalf("%d acks for %d jobs", len(acks), n)
	}
	ids := map[uint64]bool{}
	for i, a := range acks {
		if a.Seq != uint64(i) {
			t.Fatalf("ack %d has seq %d", i, a.Seq)
		}
		if i == 1234 {
			if !taskhive.IsInvalidArgument(a.Err) || !strings.Contains(a.Err.Error(), "timeout_ms:") {
				t.Fatalf("bad job's ack: %+v", a)
			}
			continue
		}
		if a.Err != nil || a.JobID == 0 || ids[a.JobID] {
			t.Fatalf("ack %d: %+v", i, a)
		}
		ids[a.JobID] = true
	}
	if j, err := c.Get(ctx, "gostream", "g2999"); err != nil || string(j.Args) != "2999" {
		t.Fatalf("gostream/g2999: %+v, %v", j, err)
	}
	if _, err := c.Get(ctx, "gostream", "g1234"); !taskhive.IsNotFound(err) {
		t.Fatalf("the refused job was stored: %v", err)
	}
}
