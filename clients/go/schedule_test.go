package taskhive_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	taskhive "github.com/taskhive/taskhive/clients/go"
	"github.com/taskhive/taskhive/clients/go/taskhivetest"
)

func TestSchedulesFirePauseResumeAndRefuseBadExpressions(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	_, err := c.CreateSchedule(ctx, "bad", "61 * * * *", "cron", nil)
	if !taskhive.IsInvalidArgument(err) || status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad cron: %v", err)
	}
	_, err = c.CreateSchedule(ctx, "bad", "* * * * *", "cron", nil, taskhive.WithZone("Mars/Olympus"))
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("bad zone: %v", err)
	}
	s, err := c.CreateSchedule(ctx, "tick", "* * * * * *", "cron", []byte("x"),
		taskhive.WithMissed(taskhive.MissedOne),
		taskhive.WithJobOptions(taskhive.WithPriority(3), taskhive.WithTimeout(30*time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if s.Missed != taskhive.MissedOne || s.Priority != 3 || s.Timeout != 30*time.Second || len(s.NextFire) != 5 {
		t.Fatalf("created: %+v", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, err := c.GetSchedule(ctx, "tick")
		if err != nil {
			t.Fatal(err)
		}
		if g.LastJob != "" {
			j, err := c.Get(ctx, "cron", g.LastJob)
			if err != nil || j.ID != g.LastJobID || string(j.Args) != "x" {
				t.Fatalf("last job %q: %+v %v", g.LastJob, j, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no tick fired")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if p, err := c.PauseSchedule(ctx, "tick"); err != nil || !p.Paused {
		t.Fatalf("pause: %+v %v", p, err)
	}
	if r, err := c.ResumeSchedule(ctx, "tick"); err != nil || r.Paused {
		t.Fatalf("resume: %+v %v", r, err)
	}
	all, err := c.ListSchedules(ctx)
	if err != nil || len(all) != 1 || all[0].Name != "tick" {
		t.Fatalf("list: %+v %v", all, err)
	}
	if err := c.DeleteSchedule(ctx, "tick"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetSchedule(ctx, "tick"); status.Code(err) != codes.NotFound {
		t.Fatalf("after delete: %v", err)
	}
}

func TestAPausedTaskKeepsItsJobsUntilResumed(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)
	if st, err := c.PauseTask(ctx, "held"); err != nil || !st.Paused {
		t.Fatalf("pause: %+v %v", st, err)
	}
	if _, err := c.Submit(ctx, "held", "a", nil); err != nil {
		t.Fatal(err)
	}
	s, err := c.Status(ctx, "held")
	if err != nil || len(s.Tasks) != 1 || !s.Tasks[0].Paused || s.Tasks[0].Pending != 1 {
		t.Fatalf("status: %+v %v", s, err)
	}
	if st, err := c.ResumeTask(ctx, "held"); err != nil || st.Paused {
		t.Fatalf("resume: %+v %v", st, err)
	}
}

func TestADoneJobIsKeptWithItsResult(t *testing.T) {
	srv := taskhivetest.Start(t, "--keep-results", "1h")
	c := srv.Client(t)
	ctx := ctxT(t)
	tw := newTestWorker(c)
	tw.Handle("kept", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		return taskhive.Done([]byte("hi " + string(j.Args)))
	})
	tw.start(t)
	res, err := c.Submit(ctx, "kept", "k1", []byte("bob"))
	if err != nil {
		t.Fatal(err)
	}
	tw.report(t, "the done report")
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := c.Get(ctx, "kept", "k1")
		if err == nil && j.State == taskhive.StateDone {
			if j.ID != res.JobID || string(j.Result) != "hi bob" || j.FinishedAt.IsZero() {
				t.Fatalf("kept job: %+v", j)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("never done: %+v %v", j, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
