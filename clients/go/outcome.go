package taskhive

import (
	"fmt"
	"time"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

type outcomeKind uint8

const (
	outcomeDone outcomeKind = iota
	outcomeFail
	outcomeSchedLater
)

// Outcome is what a handler reports for its job: build it with Done, Fail,
// FailNoRetry, SchedLater or SchedLaterStep. The zero Outcome is Done(nil).
type Outcome struct {
	kind    outcomeKind
	result  []byte
	err     string
	noRetry bool
	delay   time.Duration
	step    uint32
}

// Done finishes the job with result (handed to a RunJob caller); the job is deleted.
func Done(result []byte) Outcome {
	return Outcome{kind: outcomeDone, result: result}
}

// Fail fails this attempt: the job is retried per its retry policy, and goes
// to the dead set once its attempts are used up.
func Fail(err error) Outcome {
	return Outcome{kind: outcomeFail, err: errText(err)}
}

// FailNoRetry fails the job and sends it straight to the dead set.
func FailNoRetry(err error) Outcome {
	return Outcome{kind: outcomeFail, err: errText(err), noRetry: true}
}

// SchedLater runs the job again after d; its RunCount grows by one and its
// attempts are reset.
func SchedLater(d time.Duration) Outcome {
	return SchedLaterStep(d, 1)
}

// SchedLaterStep is SchedLater with RunCount grown by step (0 means 1).
func SchedLaterStep(d time.Duration, step uint32) Outcome {
	return Outcome{kind: outcomeSchedLater, delay: max(d, 0), step: step}
}

func errText(err error) string {
	if err == nil {
		return "failed"
	}
	return err.Error()
}

// IsDone, IsFail and IsSchedLater tell which kind of outcome o is.
func (o Outcome) IsDone() bool { return o.kind == outcomeDone }

// IsFail reports whether o fails the job (Fail or FailNoRetry).
func (o Outcome) IsFail() bool { return o.kind == outcomeFail }

// IsSchedLater reports whether o reschedules the job.
func (o Outcome) IsSchedLater() bool { return o.kind == outcomeSchedLater }

// Result is the result of a Done outcome.
func (o Outcome) Result() []byte { return o.result }

// Err is the error text of a Fail outcome ("" otherwise).
func (o Outcome) Err() string { return o.err }

// Delay is the delay of a SchedLater outcome.
func (o Outcome) Delay() time.Duration { return o.delay }

func (o Outcome) String() string {
	switch o.kind {
	case outcomeFail:
		if o.noRetry {
			return fmt.Sprintf("fail (no retry): %s", o.err)
		}
		return fmt.Sprintf("fail: %s", o.err)
	case outcomeSchedLater:
		return fmt.Sprintf("sched later %s (step %d)", o.delay, max(o.step, 1))
	default:
		return fmt.Sprintf("done (%d bytes)", len(o.result))
	}
}

func (o Outcome) pb() *pb.Outcome {
	switch o.kind {
	case outcomeFail:
		f := &pb.Fail{Error: o.err}
		if o.noRetry {
			no := false
			f.Retry = &no
		}
		return &pb.Outcome{Outcome: &pb.Outcome_Fail{Fail: f}}
	case outcomeSchedLater:
		ms := o.delay.Milliseconds()
		if ms == 0 && o.delay > 0 {
			ms = 1
		}
		return &pb.Outcome{Outcome: &pb.Outcome_SchedLater{SchedLater: &pb.SchedLater{DelayMs: ms, CountStep: o.step}}}
	default:
		return &pb.Outcome{Outcome: &pb.Outcome_Done{Done: &pb.Done{Result: o.result}}}
	}
}
