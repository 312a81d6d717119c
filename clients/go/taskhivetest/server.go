// Package taskhivetest starts a real taskhive server for tests, on a free
// loopback port with a fresh data directory, and stops it when the test ends.
//
//	srv := taskhivetest.Start(t)
//	c := srv.Client(t)
//
// The server binary is $TASKHIVE_BIN, else target/debug/taskhive of the
// taskhive repository this package sits in (build it with `cargo build`).
package taskhivetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	taskhive "github.com/taskhive/taskhive/clients/go"
)

// StartTimeout bounds how long Start waits for the server's "listening on" line.
var StartTimeout = 30 * time.Second

// Binary is the server binary tests run: $TASKHIVE_BIN, else
// <repo>/target/debug/taskhive found relative to this source file.
func Binary() string {
	if b := os.Getenv("TASKHIVE_BIN"); b != "" {
		return b
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "taskhive"
	}
	// <repo>/clients/go/taskhivetest/server.go
	repo := filepath.Join(filepath.Dir(file), "..", "..", "..")
	return filepath.Join(repo, "target", "debug", "taskhive")
}

// Server is a running taskhive server.
type Server struct {
	// Addr is host:port of the gRPC listener.
	Addr string
	// DataDir is the server's data directory (kept across Restart).
	DataDir string

	bin   string
	extra []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	output *lockedBuffer
}

// Start starts a server on 127.0.0.1 with a free port and a fresh data
// directory; extra arguments are passed to `taskhive serve`. The test fails
// at once when the server cannot start. The server is killed when the test ends.
func Start(tb testing.TB, extra ...string) *Server {
	tb.Helper()
	s := &Server{DataDir: tb.TempDir(), bin: Binary(), extra: extra, output: &lockedBuffer{}}
	if err := s.start("127.0.0.1:0"); err != nil {
		tb.Fatalf("taskhivetest: %v", err)
	}
	tb.Cleanup(func() {
		s.Kill()
		if tb.Failed() {
			tb.Logf("taskhive server output:\n%s", s.Output())
		}
	})
	return s
}

func (s *Server) start(listen string) error {
	if _, err := os.Stat(s.bin); err != nil {
		return fmt.Errorf("server binary %s: %v (set TASKHIVE_BIN or run `cargo build`)", s.bin, err)
	}
	args := append([]string{"serve", "--listen", listen, "--data", s.DataDir, "--sync", "normal"}, s.extra...)
	cmd := exec.Command(s.bin, args...)
	cmd.Env = append(os.Environ(), "RUST_LOG="+envOr("RUST_LOG", "warn"))
	KillWithParent(cmd)
	// Our own pipe, so that Wait does not close it under the reader.
	stdout, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout = pw
	cmd.Stderr = s.output
	err = cmd.Start()
	_ = pw.Close()
	if err != nil {
		_ = stdout.Close()
		return fmt.Errorf("start %s: %v", s.bin, err)
	}
	exited := make(chan struct{})
	first := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, err := r.ReadString('\n')
		if err == nil {
			first <- strings.TrimSpace(line)
		}
		close(first)
		_, _ = io.Copy(s.output, r)
		_ = stdout.Close()
	}()
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	t := time.NewTimer(StartTimeout)
	defer t.Stop()
	select {
	case line, ok := <-first:
		addr, found := strings.CutPrefix(line, "listening on ")
		if !ok || !found {
			s.Kill()
			return fmt.Errorf("server did not say where it listens (first line %q); output:\n%s", line, s.Output())
		}
		s.Addr = strings.TrimSpace(addr)
		return nil
	case <-t.C:
		s.Kill()
		return fmt.Errorf("server did not start within %s; output:\n%s", StartTimeout, s.Output())
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// Client dials the server; the client is closed when the test ends.
func (s *Server) Client(tb testing.TB) *taskhive.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := taskhive.Dial(ctx, s.Addr)
	if err != nil {
		tb.Fatalf("taskhivetest: %v", err)
	}
	tb.Cleanup(func() { _ = c.Close() })
	return c
}

// Kill stops the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL, 10*time.Second)
}

// Stop stops the server with SIGTERM (graceful) and waits for it to exit; it
// kills the server when it has not exited within timeout.
func (s *Server) Stop(timeout time.Duration) error {
	if !s.signal(syscall.SIGTERM, timeout) {
		s.Kill()
		return errors.New("taskhivetest: server did not stop after SIGTERM; killed")
	}
	return nil
}

func (s *Server) signal(sig os.Signal, timeout time.Duration) bool {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-exited:
		return true
	case <-time.After(timeout):
		return false
	}
}

// Restart starts the server again (after Kill or Stop) on the same address
// and data directory.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Kill()
	if err := s.start(s.Addr); err != nil {
		tb.Fatalf("taskhivetest: restart: %v", err)
	}
}

// Output is what the server printed so far (stderr, and stdout after its first line).
func (s *Server) Output() string { return s.output.String() }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
