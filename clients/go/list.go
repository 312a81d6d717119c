package taskhive

import (
	"context"
	"iter"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

// ListOption narrows or shapes ListJobs and ListJobsPage.
type ListOption func(*pb.ListJobsRequest)

// WithState lists only jobs in state s (default: every state, in the order running,
// pending, scheduled, dead).
func WithState(s JobState) ListOption {
	return func(r *pb.ListJobsRequest) { r.State = pb.JobState(s) }
}

// WithNamePrefix lists only jobs whose name starts with p.
func WithNamePrefix(p string) ListOption {
	return func(r *pb.ListJobsRequest) { r.NamePrefix = p }
}

// WithPageSize asks for at most n jobs per page (0 = the server's 100; at most 1000).
func WithPageSize(n int) ListOption {
	return func(r *pb.ListJobsRequest) { r.PageSize = uint32(max(0, min(n, 1<<31-1))) }
}

// JobPage is one page of ListJobs.
type JobPage struct {
	Jobs []*Job
	// NextPageToken is empty after the last page; else pass it to ListJobsPage.
	NextPageToken string
}

// ListJobsPage returns one page of task's jobs, from pageToken ("" = the first page).
// Order within a state: pending in run order (priority descending, due time, id),
// scheduled by due time, running and dead by id. IsInvalidArgument(err) for a page size
// over 1000 or a bad token.
func (c *Client) ListJobsPage(ctx context.Context, task, pageToken string, opts ...ListOption) (*JobPage, error) {
	req := &pb.ListJobsRequest{Task: task, PageToken: pageToken}
	for _, o := range opts {
		o(req)
	}
	r, err := c.rpc.ListJobs(ctx, req)
	if err != nil {
		return nil, wrap(err, "list jobs %s", task)
	}
	page := &JobPage{Jobs: make([]*Job, 0, len(r.GetJobs())), NextPageToken: r.GetNextPageToken()}
	for _, j := range r.GetJobs() {
		page.Jobs = append(page.Jobs, jobFromPB(j))
	}
	return page, nil
}

// ListJobs iterates over every job of task, fetching pages as the loop goes. An error
// ends the iteration after it is yielded:
//
//	for j, err := range c.ListJobs(ctx, "mail", taskhive.WithState(taskhive.StateDead)) {
//		if err != nil {
//			return err
//		}
//		fmt.Println(j.Name, j.LastError)
//	}
func (c *Client) ListJobs(ctx context.Context, task string, opts ...ListOption) iter.Seq2[*Job, error] {
	return func(yield func(*Job, error) bool) {
		token := ""
		for {
			page, err := c.ListJobsPage(ctx, task, token, opts...)
			if err != nil {
				yield(nil, err)
				return
			}
			for _, j := range page.Jobs {
				if !yield(j, nil) {
					return
				}
			}
			if page.NextPageToken == "" {
				return
			}
			token = page.NextPageToken
		}
	}
}
