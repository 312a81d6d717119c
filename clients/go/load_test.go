package taskhive_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	taskhive "github.com/taskhive/taskhive/clients/go"
	"github.com/taskhive/taskhive/clients/go/taskhivetest"
)

// post sends a JSON body to the server's HTTP face (same port as gRPC).
func post(t *testing.T, addr, path, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// A load-test task class implemented in Go runs inside an Exec and appears in the JobExec.
func TestGoTaskClassRunsInsideAnExec(t *testing.T) {
	srv, c := startServer(t)
	tw := newTestWorker(c, taskhive.WithCapacity(4))
	tw.Handle("go.Charge", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
		var args struct {
			SwarmID int               `json:"swarm_id"`
			Params  map[string]string `json:"params"`
		}
		if err := json.Unmarshal(j.Args, &args); err != nil {
			return taskhive.FailNoRetry(err)
		}
		res, _ := json.Marshal(map[string]string{
			"request_context": fmt.Sprintf("swarm %d sc_mc=%s", args.SwarmID, args.Params["sc_mc"]),
		})
		return taskhive.Done(res)
	})
	tw.start(t)

	job := `{"name":"go_load","host":"http://127.0.0.1:9","run_n":3,"n_swarm":2,
	         "tasks":[{"task_class":"go.Charge"}]}`
	if code, body := post(t, srv.Addr, "/job", job); code != 200 || string(body) != "Job saved" {
		t.Fatalf("/job: %d %s", code, body)
	}
	code, body := post(t, srv.Addr, "/exec", `{"name":"go_load","params":{"sc_mc":"mc"}}`)
	if code != 200 {
		t.Fatalf("/exec: %d %s", code, body)
	}
	// The same through the client's gRPC calls, with progress events.
	jobs, err := c.LoadJobs(ctxT(t))
	if err != nil || len(jobs) != 1 || jobs["go_load"] == nil {
		t.Fatalf("LoadJobs: %v %v", jobs, err)
	}
	viaClient, err := c.ExecLoadJob(ctxT(t), "go_load", map[string]string{"sc_mc": "mc"}, nil)
	if err != nil || !strings.Contains(string(viaClient), `"n_task":6`) {
		t.Fatalf("ExecLoadJob: %s %v", viaClient, err)
	}
	var report struct {
		Tasks map[string]struct {
			NTask      int `json:"n_task"`
			NSuccess   int `json:"n_success"`
			Executions []struct {
				RequestContext string `json:"request_context"`
			} `json:"executions"`
		} `json:"tasks"`
	}
	if err := json.Unmarshal(body, &report); err != nil {
		t.Fatal(err)
	}
	task := report.Tasks["go.Charge"]
	if task.NTask != 6 || task.NSuccess != 6 {
		t.Fatalf("n_task %d n_success %d: %s", task.NTask, task.NSuccess, body)
	}
	seen := map[string]bool{}
	for _, e := range task.Executions {
		seen[e.RequestContext] = true
	}
	if !seen["swarm 1 sc_mc=mc"] || !seen["swarm 2 sc_mc=mc"] || len(seen) != 2 {
		t.Fatalf("request contexts %v", seen)
	}
}

// ExecLoadJob with WithAgents runs the job on `taskhive agent` processes: the report counts
// what each ran and lists them; more agents than are connected is TOO_FEW_AGENTS.
func TestExecLoadJobOnAgents(t *testing.T) {
	srv, c := startServer(t)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	defer target.Close()
	for i := 0; i < 2; i++ {
		cmd := exec.Command(taskhivetest.Binary(), "agent", "--server", srv.Addr)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		// "agent ID connected to ADDR" once its stream is open; the read ends with the process.
		line, err := bufio.NewReader(out).ReadString('\n')
		if err != nil || !strings.Contains(line, " connected to ") {
			t.Fatalf("agent %d: %q %v", i, line, err)
		}
		go func() { _, _ = io.Copy(io.Discard, out) }()
	}
	if _, err := c.SaveLoadJob(ctxT(t), `{"name":"on_agents","host":"`+target.URL+
		`","n_swarm":4,"run_n":5,"tasks":[{"task_class":"http.get"}]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecLoadJob(ctxT(t), "on_agents", nil, nil, taskhive.WithAgents(3)); taskhive.Reason(err) != taskhive.ReasonTooFewAgents {
		t.Fatalf("three agents of two: %v", err)
	}
	for _, opt := range []taskhive.ExecOption{taskhive.WithAgents(2), taskhive.WithAllAgents()} {
		raw, err := c.ExecLoadJob(ctxT(t), "on_agents", nil, nil, opt)
		if err != nil {
			t.Fatal(err)
		}
		var report struct {
			NTask  int `json:"n_task"`
			Agents []struct {
				NTask  int  `json:"n_task"`
				Swarms int  `json:"swarms"`
				Lost   bool `json:"lost"`
			} `json:"agents"`
		}
		if err := json.Unmarshal(raw, &report); err != nil {
			t.Fatal(err)
		}
		sum, swarms := 0, 0
		for _, a := range report.Agents {
			if a.Lost {
				t.Fatalf("agent lost: %s", raw)
			}
			sum += a.NTask
			swarms += a.Swarms
		}
		if len(report.Agents) != 2 || sum != report.NTask || report.NTask != 20 || swarms != 4 {
			t.Fatalf("report: %s", raw)
		}
	}
}
