package taskhive

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

// SaveLoadJob saves (or replaces, by name) a Beetle load job given as JSON and returns it as
// stored, with defaults and inherited hosts filled in (Beetle's key order).
func (c *Client) SaveLoadJob(ctx context.Context, jobJSON string) (json.RawMessage, error) {
	r, err := pb.NewLoadRunnerClient(c.conn).SaveLoadJob(ctx,
		&pb.SaveLoadJobRequest{Input: &pb.SaveLoadJobRequest_JobJson{JobJson: jobJSON}})
	if err != nil {
		return nil, wrap(err, "save load job")
	}
	return json.RawMessage(r.GetJson()), nil
}

// LoadJobs returns every saved load job, keyed by name (Beetle's /jobs).
func (c *Client) LoadJobs(ctx context.Context) (map[string]json.RawMessage, error) {
	r, err := pb.NewLoadRunnerClient(c.conn).ListLoadJobs(ctx, &pb.ListLoadJobsRequest{})
	if err != nil {
		return nil, wrap(err, "list load jobs")
	}
	out := make(map[string]json.RawMessage, len(r.GetJobs()))
	for _, j := range r.GetJobs() {
		out[j.GetName()] = json.RawMessage(j.GetJson())
	}
	return out, nil
}

// ExecOption changes how ExecLoadJob runs the job.
type ExecOption func(*pb.ExecRequest)

// WithAgents runs the job on n connected load agents (`taskhive agent`): the server splits
// the swarms (or the arrival rate) across them and merges their figures into the one
// report, which lists them under "agents". Fewer connected than n fails with
// FAILED_PRECONDITION, reason TOO_FEW_AGENTS.
func WithAgents(n uint32) ExecOption {
	return func(r *pb.ExecRequest) { r.Agents = &pb.ExecRequest_AgentsN{AgentsN: n} }
}

// WithAllAgents runs the job on every connected load agent.
func WithAllAgents() ExecOption {
	return func(r *pb.ExecRequest) { r.Agents = &pb.ExecRequest_AgentsAll{AgentsAll: true} }
}

// ExecLoadJob runs a saved load job: progress is called about once a second while it runs
// (may be nil), and the JobExec report (Beetle's JSON) is returned at the end. Another
// execution running makes it fail with codes.Aborted. Without options it runs in the
// server's process.
func (c *Client) ExecLoadJob(ctx context.Context, name string, params map[string]string,
	progress func(*pb.ExecProgress), opts ...ExecOption) (json.RawMessage, error) {
	req := &pb.ExecRequest{Name: name, Params: params}
	for _, o := range opts {
		o(req)
	}
	stream, err := pb.NewLoadRunnerClient(c.conn).Exec(ctx, req)
	if err != nil {
		return nil, wrap(err, "exec %s", name)
	}
	for {
		ev, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, wrap(errors.New("stream ended without a report"), "exec %s", name)
		}
		if err != nil {
			return nil, wrap(err, "exec %s", name)
		}
		switch e := ev.GetEvent().(type) {
		case *pb.ExecEvent_Progress:
			if progress != nil {
				progress(e.Progress)
			}
		case *pb.ExecEvent_Finished:
			return json.RawMessage(e.Finished.GetJson()), nil
		}
	}
}
