package taskhive_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	taskhive "github.com/taskhive/taskhive/clients/go"
)

func TestListJobsIteratesEveryPageInOrder(t *testing.T) {
	_, c := startServer(t)
	ctx := ctxT(t)

	var subs []taskhive.Submission
	for i := range 25 {
		subs = append(subs, taskhive.Submission{Task: "lj", Name: fmt.Sprintf("p%02d", i),
			Opts: []taskhive.SubmitOption{taskhive.WithPriority(int32(i % 3))}})
	}
	for i := range 3 {
		subs = append(subs, taskhive.Submission{Task: "lj", Name: fmt.Sprintf("s%d", i),
			Opts: []taskhive.SubmitOption{taskhive.WithDelay(time.Hour - time.Duration(i)*time.Second)}})
	}
	if _, err := c.SubmitMany(ctx, subs); err != nil {
		t.Fatal(err)
	}

	var names []string
	var pending []*taskhive.Job
	for j, err := range c.ListJobs(ctx, "lj", taskhive.WithPageSize(4)) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, j.Name)
		if j.State == taskhive.StatePending {
			pending = append(pending, j)
		}
	}
	if len(names) != 28 || len(pending) != 25 {
		t.Fatalf("listed %d (%d pending): %v", len(names), len(pending), names)
	}
	for i := 1; i < len(pending); i++ {
		a, b := pending[i-1], pending[i]
		before := a.Priority > b.Priority || (a.Priority == b.Priority &&
			(a.SchedAt.Before(b.SchedAt) || (a.SchedAt.Equal(b.SchedAt) && a.ID < b.ID)))
		if !before {
			t.Fatalf("not in run order at %d: %+v then %+v", i, a, b)
		}
	}
	if got := strings.Join(names[25:], ","); got != "s2,s1,s0" {
		t.Fatalf("scheduled by due time: %s", got)
	}

	n := 0
	for j, err := range c.ListJobs(ctx, "lj", taskhive.WithState(taskhive.StatePending), taskhive.WithNamePrefix("p1")) {
		if err != nil || !strings.HasPrefix(j.Name, "p1") {
			t.Fatalf("%v %v", j, err)
		}
		n++
	}
	if n != 10 {
		t.Fatalf("name prefix p1: %d jobs", n)
	}

	page, err := c.ListJobsPage(ctx, "lj", "", taskhive.WithState(taskhive.StateScheduled), taskhive.WithPageSize(2))
	if err != nil || len(page.Jobs) != 2 || page.NextPageToken == "" {
		t.Fatalf("first page: %+v %v", page, err)
	}
	last, err := c.ListJobsPage(ctx, "lj", page.NextPageToken, taskhive.WithState(taskhive.StateScheduled))
	if err != nil || len(last.Jobs) != 1 || last.NextPageToken != "" {
		t.Fatalf("last page: %+v %v", last, err)
	}

	if _, err := c.ListJobsPage(ctx, "lj", "", taskhive.WithPageSize(1001)); !taskhive.IsInvalidArgument(err) ||
		!strings.Contains(err.Error(), "page_size") {
		t.Fatalf("page size 1001: %v", err)
	}
	for _, err := range c.ListJobs(ctx, "lj", taskhive.WithPageSize(5000)) {
		if !taskhive.IsInvalidArgument(err) {
			t.Fatalf("iterator error: %v", err)
		}
	}
	if _, err := c.ListJobsPage(ctx, "lj", "garbage"); !taskhive.IsInvalidArgument(err) ||
		!strings.Contains(err.Error(), "page_token") {
		t.Fatalf("bad token: %v", err)
	}
}
