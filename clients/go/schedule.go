package taskhive

import (
	"context"
	"time"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

// Missed says what happens to a schedule's ticks that passed while no server ran.
type Missed int32

const (
	// MissedSkip drops missed ticks (a tick at most 5 s late still fires). The default.
	MissedSkip Missed = Missed(pb.MissedTicks_MISSED_TICKS_SKIP)
	// MissedOne enqueues one job, for the newest missed tick.
	MissedOne Missed = Missed(pb.MissedTicks_MISSED_TICKS_ONE)
	// MissedAll enqueues a job for each missed tick (the newest 100).
	MissedAll Missed = Missed(pb.MissedTicks_MISSED_TICKS_ALL)
)

// Schedule is a named cron expression that enqueues a job of Task on every
// tick, named "NAME@<tick in RFC 3339 UTC>".
type Schedule struct {
	Name string
	Cron string
	// TZ is the IANA zone the expression is read in ("" = UTC).
	TZ       string
	Task     string
	Args     []byte
	Priority int32
	// Timeout is the jobs' lease length (0 = the server's default).
	Timeout time.Duration
	Retry   RetryPolicy
	Missed  Missed
	Paused  bool
	// LastTick is the last tick fired (or when the schedule was created or resumed).
	LastTick time.Time
	// LastJob is the job the last tick enqueued ("" before the first tick).
	LastJob string
	// LastJobID is its id while it exists (GetSchedule only).
	LastJobID uint64
	// NextFire holds the next fire times (GetSchedule only).
	NextFire []time.Time
}

// ScheduleOption sets an optional field of CreateSchedule.
type ScheduleOption func(*pb.CreateScheduleRequest)

// WithZone reads the expression in an IANA time zone (default UTC).
func WithZone(tz string) ScheduleOption {
	return func(r *pb.CreateScheduleRequest) { r.Tz = tz }
}

// WithMissed sets what happens to ticks missed during downtime.
func WithMissed(m Missed) ScheduleOption {
	return func(r *pb.CreateScheduleRequest) { r.Missed = pb.MissedTicks(m) }
}

// WithJobOptions applies submit options (timeout, priority, retry) to the jobs
// the schedule enqueues; their name and due time come from the tick.
func WithJobOptions(opts ...SubmitOption) ScheduleOption {
	return func(r *pb.CreateScheduleRequest) {
		j := &pb.SubmitJobRequest{}
		for _, o := range opts {
			o(j)
		}
		r.TimeoutMs = j.TimeoutMs
		r.Priority = j.Priority
		r.Retry = j.Retry
	}
}

// CreateSchedule creates or replaces a schedule: a job of task on every tick of
// cron (5 fields, or 6 with seconds first). A malformed expression or an
// unknown zone is refused with codes.InvalidArgument and nothing is stored.
func (c *Client) CreateSchedule(ctx context.Context, name, cron, task string, args []byte, opts ...ScheduleOption) (*Schedule, error) {
	req := &pb.CreateScheduleRequest{Name: name, Cron: cron, Task: task, Args: args}
	for _, o := range opts {
		o(req)
	}
	s, err := c.rpc.CreateSchedule(ctx, req)
	if err != nil {
		return nil, wrap(err, "create schedule %s", name)
	}
	return scheduleFromPB(s), nil
}

// ListSchedules returns every schedule, in name order.
func (c *Client) ListSchedules(ctx context.Context) ([]*Schedule, error) {
	r, err := c.rpc.ListSchedules(ctx, &pb.ListSchedulesRequest{})
	if err != nil {
		return nil, wrap(err, "list schedules")
	}
	out := make([]*Schedule, 0, len(r.GetSchedules()))
	for _, s := range r.GetSchedules() {
		out = append(out, scheduleFromPB(s))
	}
	return out, nil
}

// GetSchedule returns one schedule with its next fire times and last job.
func (c *Client) GetSchedule(ctx context.Context, name string) (*Schedule, error) {
	s, err := c.rpc.GetSchedule(ctx, &pb.ScheduleRef{Name: name})
	if err != nil {
		return nil, wrap(err, "get schedule %s", name)
	}
	return scheduleFromPB(s), nil
}

// PauseSchedule stops a schedule's ticks from firing.
func (c *Client) PauseSchedule(ctx context.Context, name string) (*Schedule, error) {
	s, err := c.rpc.PauseSchedule(ctx, &pb.ScheduleRef{Name: name})
	if err != nil {
		return nil, wrap(err, "pause schedule %s", name)
	}
	return scheduleFromPB(s), nil
}

// ResumeSchedule fires a schedule's ticks again from now on (the paused time
// is not caught up).
func (c *Client) ResumeSchedule(ctx context.Context, name string) (*Schedule, error) {
	s, err := c.rpc.ResumeSchedule(ctx, &pb.ScheduleRef{Name: name})
	if err != nil {
		return nil, wrap(err, "resume schedule %s", name)
	}
	return scheduleFromPB(s), nil
}

// DeleteSchedule deletes a schedule; the jobs it enqueued stay.
func (c *Client) DeleteSchedule(ctx context.Context, name string) error {
	_, err := c.rpc.DeleteSchedule(ctx, &pb.ScheduleRef{Name: name})
	return wrap(err, "delete schedule %s", name)
}

func scheduleFromPB(s *pb.Schedule) *Schedule {
	out := &Schedule{
		Name:     s.GetName(),
		Cron:     s.GetCron(),
		TZ:       s.GetTz(),
		Task:     s.GetTask(),
		Args:     s.GetArgs(),
		Priority: s.GetPriority(),
		Timeout:  time.Duration(s.GetTimeoutMs()) * time.Millisecond,
		Retry: RetryPolicy{
			MaxAttempts: s.GetRetry().GetMaxAttempts(),
			BackoffBase: time.Duration(s.GetRetry().GetBackoffBaseMs()) * time.Millisecond,
			BackoffMax:  time.Duration(s.GetRetry().GetBackoffMaxMs()) * time.Millisecond,
		},
		Missed:    Missed(s.GetMissed()),
		Paused:    s.GetPaused(),
		LastTick:  time.UnixMilli(s.GetLastTickMs()),
		LastJob:   s.GetLastJob(),
		LastJobID: s.GetLastJobId(),
	}
	if out.Missed == Missed(pb.MissedTicks_MISSED_TICKS_UNSPECIFIED) {
		out.Missed = MissedSkip
	}
	for _, t := range s.GetNextFireMs() {
		out.NextFire = append(out.NextFire, time.UnixMilli(t))
	}
	return out
}

// PauseTask pauses a task: submits are accepted and kept, none of its jobs is
// handed out (on any node), running ones finish. It lasts across restarts. It
// returns the task's counts.
func (c *Client) PauseTask(ctx context.Context, task string) (TaskStatus, error) {
	r, err := c.rpc.PauseTask(ctx, &pb.TaskRef{Task: task})
	if err != nil {
		return TaskStatus{}, wrap(err, "pause %s", task)
	}
	return taskStatusFromPB(r.GetStatus()), nil
}

// ResumeTask resumes a paused task and returns its counts.
func (c *Client) ResumeTask(ctx context.Context, task string) (TaskStatus, error) {
	r, err := c.rpc.ResumeTask(ctx, &pb.TaskRef{Task: task})
	if err != nil {
		return TaskStatus{}, wrap(err, "resume %s", task)
	}
	return taskStatusFromPB(r.GetStatus()), nil
}
