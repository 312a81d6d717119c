package taskhive

import (
	"context"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

// TaskLimits are a task's flow-control limits, enforced by the server when it
// hands jobs out (on every node of a cluster) and kept across restarts.
//
// A zero field means no limit of that kind, and the zero TaskLimits means no
// limits at all: zero counts and empty rates are not sent. Negative counts are
// sent and refused by the server (IsInvalidArgument, ErrorMetadata(err)["field"]
// naming the field).
//
// Rates are "N/UNIT" or "N/KUNIT" with UNIT one of ms, s, m, h, d: "100/s",
// "5000/h", "10/5m". The server reports them in its own spelling ("1/60s"
// comes back as "1/m").
type TaskLimits struct {
	// MaxRunning caps how many of the task's jobs are leased (running) at once.
	MaxRunning int64
	// Rate caps how many of the task's jobs start per period, e.g. "100/s".
	Rate string
	// Burst is how many starts may go at once after an idle spell (server
	// default 1); it needs Rate or RatePerKey.
	Burst int64
	// MaxRunningPerKey caps how many jobs of one key (WithKey) are leased at once.
	MaxRunningPerKey int64
	// RatePerKey caps how many jobs of one key start per period.
	RatePerKey string
}

// IsZero reports whether l sets no limit.
func (l TaskLimits) IsZero() bool { return l == TaskLimits{} }

func (l TaskLimits) pb() *pb.TaskLimits {
	opt := func(n int64) *int64 {
		if n == 0 {
			return nil
		}
		return &n
	}
	return &pb.TaskLimits{
		MaxRunning:       opt(l.MaxRunning),
		Rate:             l.Rate,
		Burst:            opt(l.Burst),
		MaxRunningPerKey: opt(l.MaxRunningPerKey),
		RatePerKey:       l.RatePerKey,
	}
}

func taskLimitsFromPB(l *pb.TaskLimits) TaskLimits {
	return TaskLimits{
		MaxRunning:       l.GetMaxRunning(),
		Rate:             l.GetRate(),
		Burst:            l.GetBurst(),
		MaxRunningPerKey: l.GetMaxRunningPerKey(),
		RatePerKey:       l.GetRatePerKey(),
	}
}

// SetTaskLimits replaces a task's flow-control limits and returns them as the
// server stored them: a field left zero removes that limit, and the zero
// TaskLimits clears them all (as ClearTaskLimits). A bad value is refused with
// codes.InvalidArgument, ErrorMetadata(err)["field"] naming it ("rate", ...),
// and nothing is stored.
func (c *Client) SetTaskLimits(ctx context.Context, task string, limits TaskLimits) (TaskLimits, error) {
	r, err := c.rpc.SetTaskLimits(ctx, &pb.SetTaskLimitsRequest{Task: task, Limits: limits.pb()})
	if err != nil {
		return TaskLimits{}, wrap(err, "set limits of %s", task)
	}
	return taskLimitsFromPB(r.GetLimits()), nil
}

// GetTaskLimits returns a task's flow-control limits (the zero TaskLimits
// when it has none).
func (c *Client) GetTaskLimits(ctx context.Context, task string) (TaskLimits, error) {
	r, err := c.rpc.GetTaskLimits(ctx, &pb.TaskRef{Task: task})
	if err != nil {
		return TaskLimits{}, wrap(err, "get limits of %s", task)
	}
	return taskLimitsFromPB(r.GetLimits()), nil
}

// ClearTaskLimits removes every flow-control limit of a task.
func (c *Client) ClearTaskLimits(ctx context.Context, task string) error {
	_, err := c.rpc.SetTaskLimits(ctx, &pb.SetTaskLimitsRequest{Task: task, Limits: &pb.TaskLimits{}})
	return wrap(err, "clear limits of %s", task)
}
