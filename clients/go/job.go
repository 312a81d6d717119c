package taskhive

import (
	"time"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

// JobState is where a job is in its life.
type JobState int32

const (
	// StateUnspecified is the zero value; the server never reports it.
	StateUnspecified JobState = JobState(pb.JobState_JOB_STATE_UNSPECIFIED)
	// StatePending jobs are due and wait for a worker.
	StatePending JobState = JobState(pb.JobState_JOB_STATE_PENDING)
	// StateScheduled jobs are due in the future.
	StateScheduled JobState = JobState(pb.JobState_JOB_STATE_SCHEDULED)
	// StateRunning jobs are leased to a worker.
	StateRunning JobState = JobState(pb.JobState_JOB_STATE_RUNNING)
	// StateDead jobs failed past their retry cap.
	StateDead JobState = JobState(pb.JobState_JOB_STATE_DEAD)
	// StateDone jobs finished; the server keeps them for `serve --keep-results`.
	StateDone JobState = JobState(pb.JobState_JOB_STATE_DONE)
)

func (s JobState) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateScheduled:
		return "scheduled"
	case StateRunning:
		return "running"
	case StateDead:
		return "dead"
	case StateDone:
		return "done"
	default:
		return "unspecified"
	}
}

// RetryPolicy says how a failing job is retried: exponential backoff with
// jitter, up to MaxAttempts, then the dead set. Zero fields take the server's
// defaults (25 attempts, 1 s base, 1 h cap).
type RetryPolicy struct {
	MaxAttempts uint32
	BackoffBase time.Duration
	BackoffMax  time.Duration
}

func (r RetryPolicy) pb() *pb.RetryPolicy {
	return &pb.RetryPolicy{
		MaxAttempts:   r.MaxAttempts,
		BackoffBaseMs: uint64(r.BackoffBase.Milliseconds()),
		BackoffMaxMs:  uint64(r.BackoffMax.Milliseconds()),
	}
}

// Job is a job as the server reports it, and as a worker's handler receives it.
type Job struct {
	ID       uint64
	Task     string
	Name     string
	Args     []byte
	SchedAt  time.Time
	Timeout  time.Duration // lease length
	Priority int32
	// Attempts counts failed attempts so far (fails, lease expiries, lost workers).
	Attempts uint32
	// RunCount counts SchedLater reschedules (grown by their count step).
	RunCount  uint32
	State     JobState
	Retry     RetryPolicy
	LastError string
	// LeaseID is set on jobs handed to a worker.
	LeaseID uint64
	// Result is a done job's result (`serve --keep-results`).
	Result []byte
	// FinishedAt is when a done job finished (zero otherwise).
	FinishedAt time.Time
	// Traceparent is the W3C trace context a worker continues (empty when the submitter
	// sent none); the worker's handler runs in a span under it.
	Traceparent string
	// Key is the flow-control key the job was submitted with (WithKey; "" = none).
	Key string
}

func jobFromPB(j *pb.Job) *Job {
	if j == nil {
		return nil
	}
	out := &Job{
		ID:          j.GetId(),
		Task:        j.GetTask(),
		Name:        j.GetName(),
		Args:        j.GetArgs(),
		Timeout:     time.Duration(j.GetTimeoutMs()) * time.Millisecond,
		Priority:    j.GetPriority(),
		Attempts:    j.GetAttempts(),
		RunCount:    j.GetRunCount(),
		State:       JobState(j.GetState()),
		LastError:   j.GetLastError(),
		Traceparent: j.GetTraceparent(),
		LeaseID:     j.GetLeaseId(),
		Key:         j.GetKey(),
	}
	if ms := j.GetSchedAtMs(); ms > 0 {
		out.SchedAt = time.UnixMilli(ms)
	}
	out.Result = j.GetResult()
	if ms := j.GetFinishedAtMs(); ms > 0 {
		out.FinishedAt = time.UnixMilli(ms)
	}
	if r := j.GetRetry(); r != nil {
		out.Retry = RetryPolicy{
			MaxAttempts: r.GetMaxAttempts(),
			BackoffBase: time.Duration(r.GetBackoffBaseMs()) * time.Millisecond,
			BackoffMax:  time.Duration(r.GetBackoffMaxMs()) * time.Millisecond,
		}
	}
	return out
}

// TaskStatus holds the counts of one task (or the totals over every task).
type TaskStatus struct {
	Task      string
	Workers   uint32
	Pending   uint64 // due and waiting for a worker
	Scheduled uint64 // due later
	Running   uint64
	Dead      uint64
	Locked    uint64 // waiting for a named lock
	Broadcast bool
	// Paused is set while the task is paused (Client.PauseTask): its jobs are kept, none is handed out.
	Paused bool
	// NextSchedAt is the earliest due time among pending and scheduled jobs (zero when none).
	NextSchedAt time.Time
	// Limits are the task's flow-control limits (Client.SetTaskLimits); nil when it has none.
	Limits *TaskLimits
	// WaitingOnLimit counts ready jobs held back by a limit (the task's, or their key's).
	WaitingOnLimit uint64
}

// Status is the answer of Client.Status.
type Status struct {
	Tasks  []TaskStatus
	Totals TaskStatus
}

// Task returns the status of the named task, and whether it was listed.
func (s *Status) Task(name string) (TaskStatus, bool) {
	for _, t := range s.Tasks {
		if t.Task == name {
			return t, true
		}
	}
	return TaskStatus{Task: name}, false
}

func taskStatusFromPB(t *pb.TaskStatus) TaskStatus {
	if t == nil {
		return TaskStatus{}
	}
	out := TaskStatus{
		Task:      t.GetTask(),
		Workers:   t.GetWorkers(),
		Pending:   t.GetPending(),
		Scheduled: t.GetScheduled(),
		Running:   t.GetRunning(),
		Dead:      t.GetDead(),
		Locked:    t.GetLocked(),
		Broadcast: t.GetBroadcast(),
		Paused:    t.GetPaused(),
	}
	out.WaitingOnLimit = t.GetWaitingOnLimit()
	if l := t.GetLimits(); l != nil {
		lim := taskLimitsFromPB(l)
		out.Limits = &lim
	}
	if ms := t.GetNextSchedAtMs(); ms > 0 {
		out.NextSchedAt = time.UnixMilli(ms)
	}
	return out
}
