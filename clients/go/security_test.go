package taskhive_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	taskhive "github.com/taskhive/taskhive/clients/go"
	"github.com/taskhive/taskhive/clients/go/taskhivetest"
)

// tokensLine asks the server binary for a tokens-file line (`taskhive auth hash`).
func tokensLine(t *testing.T, role, token string) string {
	t.Helper()
	out, err := exec.Command(taskhivetest.Binary(), "auth", "hash", token, "--role", role).Output()
	if err != nil {
		t.Fatalf("auth hash: %v", err)
	}
	return string(out)
}

func dial(t *testing.T, addr string, opts ...taskhive.DialOption) *taskhive.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	c, err := taskhive.Dial(ctx, addr, opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestTokensAndRoles(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	lines := tokensLine(t, "client", "go-client") + tokensLine(t, "worker", "go-worker")
	if err := os.WriteFile(file, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := taskhivetest.Start(t, "--auth", file)
	ctx := ctxT(t)

	anon := dial(t, srv.Addr)
	if _, err := anon.Submit(ctx, "echo", "a", nil); !taskhive.IsUnauthenticated(err) {
		t.Fatalf("submit without a token: %v, want UNAUTHENTICATED", err)
	}
	asWorker := dial(t, srv.Addr, taskhive.WithToken("go-worker"))
	if _, err := asWorker.Submit(ctx, "echo", "a", nil); !taskhive.IsPermissionDenied(err) {
		t.Fatalf("submit with a worker token: %v, want PERMISSION_DENIED", err)
	}

	w := newTestWorker(taskhive.Addr(srv.Addr), taskhive.WithDialOptions(taskhive.WithToken("go-worker")))
	w.Handle("echo", func(_ context.Context, j *taskhive.Job) taskhive.Outcome {
		return taskhive.Done([]byte(strings.ToUpper(string(j.Args))))
	})
	w.start(t)
	c := dial(t, srv.Addr, taskhive.WithToken("go-client"))
	r, err := c.RunJob(ctx, "echo", "b", []byte("abc"))
	if err != nil || string(r.Result) != "ABC" {
		t.Fatalf("run job with tokens: %v %v", r, err)
	}
	if _, err := c.Drop(ctx, "echo"); !taskhive.IsPermissionDenied(err) {
		t.Fatalf("drop with a client token: %v, want PERMISSION_DENIED", err)
	}
}

func TestTLSWithCAFile(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	openssl := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("openssl", args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"),
		"-days", "1", "-subj", "/CN=taskhive test CA")
	openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("srv.key"), "-out", p("srv.csr"),
		"-subj", "/CN=localhost")
	if err := os.WriteFile(p("ext.cnf"), []byte("subjectAltName=DNS:localhost,IP:127.0.0.1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openssl("x509", "-req", "-in", p("srv.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
		"-CAcreateserial", "-out", p("srv.pem"), "-days", "1", "-extfile", p("ext.cnf"))
	srv := taskhivetest.Start(t, "--tls-cert", p("srv.pem"), "--tls-key", p("srv.key"))
	ctx := ctxT(t)

	port := srv.Addr[strings.LastIndex(srv.Addr, ":")+1:]
	c := dial(t, "localhost:"+port, taskhive.WithCAFile(p("ca.pem")))
	if _, err := c.Submit(ctx, "t", "a", []byte("x")); err != nil {
		t.Fatalf("submit over TLS: %v", err)
	}
	// A plaintext client never gets a ready connection.
	short, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := taskhive.Dial(short, srv.Addr); err == nil {
		t.Fatalf("plaintext dial to a TLS port succeeded")
	}
	if _, err := taskhive.Dial(ctx, srv.Addr, taskhive.WithCAFile(p("missing.pem"))); !taskhive.IsInvalidArgument(err) {
		t.Fatalf("missing CA file: %v", err)
	}
}
