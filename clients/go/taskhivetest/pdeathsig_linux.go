package taskhivetest

import (
	"os/exec"
	"syscall"
)

// KillWithParent makes cmd (not yet started) receive SIGKILL when the test
// process dies, so that a crashed or timed-out test leaves no process behind.
// It does nothing on systems other than Linux.
func KillWithParent(cmd *exec.Cmd) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}
