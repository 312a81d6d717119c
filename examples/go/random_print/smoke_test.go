// Smoke test of the random_print example: builds the client and the worker,
// runs them against a real server with short delays, and checks the output.
package randomprint_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	taskhive "github.com/taskhive/taskhive/clients/go"
	"github.com/taskhive/taskhive/clients/go/taskhivepb"
	"github.com/taskhive/taskhive/clients/go/taskhivetest"
)

const waitLong = 60 * time.Second

func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func TestRandomPrint(t *testing.T) {
	bin := t.TempDir()
	workerBin := build(t, bin, "./worker")
	clientBin := build(t, bin, "./client")
	srv := taskhivetest.Start(t)

	const maxCount = 3
	worker := exec.Command(workerBin, "-addr", srv.Addr,
		"-max-count", fmt.Sprint(maxCount), "-min-delay", "20ms", "-max-delay", "60ms")
	stdout, err := worker.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	worker.Stderr = os.Stderr
	taskhivetest.KillWithParent(worker)
	if err := worker.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- worker.Wait() }()
	t.Cleanup(func() { _ = worker.Process.Kill() })
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	// Watch the job from before it exists: the watch ends when the job is done.
	c := srv.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	watch, err := c.RPC().WatchJob(ctx, &taskhivepb.JobRef{Task: "random_print", Name: "Hello world!"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Header(); err != nil { // the server is watching
		t.Fatal(err)
	}

	// The client works through the environment's address too.
	client := exec.Command(clientBin)
	client.Env = append(os.Environ(), "TASKHIVE_ADDR="+srv.Addr)
	out, err := client.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "submitted random_print/Hello world!") {
		t.Fatalf("client: %v\n%s", err, out)
	}

	// Counts 0..maxCount+1, then Finish!
	var want []string
	for i := range maxCount + 2 {
		want = append(want, fmt.Sprintf("%d Hello world!", i))
	}
	want = append(want, "Finish!")
	for _, w := range want {
		select {
		case l := <-lines:
			if l != w {
				t.Fatalf("worker printed %q, want %q", l, w)
			}
		case err := <-exited:
			t.Fatalf("worker exited early: %v", err)
		case <-time.After(waitLong):
			t.Fatalf("worker did not print %q in time", w)
		}
	}

	// The job is done (and deleted); the worker stops cleanly on SIGTERM.
	ev, err := watch.Recv()
	if err != nil || ev.GetResult() == nil {
		t.Fatalf("watch: %v, %v", ev, err)
	}
	if _, err := c.Get(ctx, "random_print", "Hello world!"); !taskhive.IsNotFound(err) {
		t.Fatalf("job after Finish!: %v", err)
	}
	if err := worker.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("worker exit: %v", err)
		}
	case <-time.After(waitLong):
		t.Fatal("worker did not stop on SIGTERM")
	}
}
