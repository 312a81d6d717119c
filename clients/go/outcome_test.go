package taskhive

import (
	"errors"
	"testing"
	"time"
)

func TestOutcomeToProto(t *testing.T) {
	if d := Done([]byte("r")).pb().GetDone(); d == nil || string(d.GetResult()) != "r" {
		t.Fatalf("Done: %v", d)
	}
	if d := (Outcome{}).pb().GetDone(); d == nil {
		t.Fatal("the zero Outcome is not Done")
	}
	f := Fail(errors.New("bad")).pb().GetFail()
	if f == nil || f.GetError() != "bad" || f.Retry != nil {
		t.Fatalf("Fail: %v", f)
	}
	f = FailNoRetry(nil).pb().GetFail()
	if f == nil || f.GetError() != "failed" || f.Retry == nil || *f.Retry {
		t.Fatalf("FailNoRetry: %v", f)
	}
	s := SchedLater(1500 * time.Microsecond).pb().GetSchedLater()
	if s == nil || s.GetDelayMs() != 1 || s.GetCountStep() != 1 {
		t.Fatalf("SchedLater: %v", s)
	}
	s = SchedLaterStep(-time.Second, 3).pb().GetSchedLater()
	if s == nil || s.GetDelayMs() != 0 || s.GetCountStep() != 3 {
		t.Fatalf("SchedLaterStep: %v", s)
	}
	if !Fail(nil).IsFail() || !SchedLater(0).IsSchedLater() || !Done(nil).IsDone() {
		t.Fatal("kind predicates")
	}
}
