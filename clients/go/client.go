// Package taskhive is the Go client of the taskhive job scheduler: a Client
// submits and inspects jobs, a Worker runs them.
//
//	c, err := taskhive.Dial(ctx, "127.0.0.1:5000")
//	_, err = c.Submit(ctx, "email", "welcome-42", payload, taskhive.WithDelay(time.Minute))
//
//	w := taskhive.NewWorker(c, taskhive.WithCapacity(4))
//	w.Handle("email", func(ctx context.Context, j *taskhive.Job) taskhive.Outcome {
//		return taskhive.Done(nil)
//	})
//	err = w.Run(ctx) // until ctx is cancelled
//
// Errors wrap the gRPC status of the failed call: status.Code(err) works on
// them, and IsNoWorker, IsNotFound, IsJobFailed, ... name the common cases.
package taskhive

import (
	"context"
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

// Client talks to one taskhive server. It is safe for concurrent use.
type Client struct {
	addr string
	conn *grpc.ClientConn
	rpc  pb.SchedulerClient
}

type dialConfig struct {
	creds    credentials.TransportCredentials
	grpcOpts []grpc.DialOption
	lazy     bool
	err      error
}

// DialOption configures Dial.
type DialOption func(*dialConfig)

// WithTransportCredentials sets the connection's credentials (default: plaintext).
func WithTransportCredentials(c credentials.TransportCredentials) DialOption {
	return func(d *dialConfig) { d.creds = c }
}

// WithCAFile turns on TLS, trusting the CA certificate (PEM) in path
// (credentials.NewClientTLSFromFile). The server name checked is addr's host.
func WithCAFile(path string) DialOption {
	return func(d *dialConfig) {
		c, err := credentials.NewClientTLSFromFile(path, "")
		if err != nil {
			d.err = fmt.Errorf("CA file %s: %w", path, err)
			return
		}
		d.creds = c
	}
}

// WithToken sends "authorization: Bearer <token>" with every call, for a
// server started with --auth. It works over plaintext and TLS alike.
func WithToken(token string) DialOption {
	return func(d *dialConfig) {
		d.grpcOpts = append(d.grpcOpts, grpc.WithPerRPCCredentials(bearer(token)))
	}
}

// bearer is a token sent as per-call metadata.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

// RequireTransportSecurity is false so that loopback and plaintext set-ups
// can use tokens too; use WithCAFile when the network is not trusted.
func (bearer) RequireTransportSecurity() bool { return false }

// WithGRPCDialOptions passes extra options to grpc.NewClient.
func WithGRPCDialOptions(opts ...grpc.DialOption) DialOption {
	return func(d *dialConfig) { d.grpcOpts = append(d.grpcOpts, opts...) }
}

// WithLazyConnect makes Dial return at once, without waiting for the server:
// the connection is made by the first call.
func WithLazyConnect() DialOption {
	return func(d *dialConfig) { d.lazy = true }
}

// Dial connects to the server at addr ("host:port", or any gRPC target) and
// waits until the connection is ready or ctx is done (see WithLazyConnect).
func Dial(ctx context.Context, addr string, opts ...DialOption) (*Client, error) {
	cfg := dialConfig{creds: insecure.NewCredentials()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.err != nil {
		return nil, wrap(status.Error(codes.InvalidArgument, cfg.err.Error()), "dial %s", addr)
	}
	gopts := append([]grpc.DialOption{
		grpc.WithTransportCredentials(cfg.creds),
		grpc.WithChainUnaryInterceptor(traceUnary),
		grpc.WithChainStreamInterceptor(traceStream),
	}, cfg.grpcOpts...)
	conn, err := grpc.NewClient(addr, gopts...)
	if err != nil {
		return nil, wrap(status.Error(codes.InvalidArgument, err.Error()), "dial %s", addr)
	}
	c := &Client{addr: addr, conn: conn, rpc: pb.NewSchedulerClient(conn)}
	if cfg.lazy {
		return c, nil
	}
	if err := waitReady(ctx, conn); err != nil {
		_ = conn.Close()
		return nil, wrap(err, "dial %s", addr)
	}
	return c, nil
}

// waitReady waits for conn to be ready; the error carries codes.Unavailable
// (or the context's code) so that callers can tell it apart.
func waitReady(ctx context.Context, conn *grpc.ClientConn) error {
	conn.Connect()
	for {
		s := conn.GetState()
		switch s {
		case connectivity.Ready:
			return nil
		case connectivity.Shutdown:
			return status.Error(codes.Canceled, "connection closed")
		}
		if !conn.WaitForStateChange(ctx, s) {
			code := status.FromContextError(ctx.Err()).Code()
			return status.Errorf(code, "server not ready (connection %s): %v", s, ctx.Err())
		}
	}
}

// Addr is the address the client was dialled with.
func (c *Client) Addr() string { return c.addr }

// Conn is the underlying gRPC connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// RPC is the generated stub, for the calls this package does not wrap
// (WatchJob, RunJobStream, GetConfig/SetConfig, Dump/Load, ...).
func (c *Client) RPC() pb.SchedulerClient { return c.rpc }

// Close closes the connection. Workers using the client stop working.
func (c *Client) Close() error {
	if err := c.conn.Close(); err != nil && status.Code(err) != codes.Canceled {
		return wrap(err, "close")
	}
	return nil
}

// SubmitOption sets a field of a submitted job.
type SubmitOption func(*pb.SubmitJobRequest)

// WithSchedAt makes the job due at t (a zero or past t means now).
func WithSchedAt(t time.Time) SubmitOption {
	return func(r *pb.SubmitJobRequest) {
		if t.IsZero() {
			r.SchedAtMs = 0
			return
		}
		r.SchedAtMs = t.UnixMilli()
	}
}

// WithDelay makes the job due d from now.
func WithDelay(d time.Duration) SubmitOption {
	return func(r *pb.SubmitJobRequest) {
		if d <= 0 {
			r.SchedAtMs = 0
			return
		}
		r.SchedAtMs = time.Now().Add(d).UnixMilli()
	}
}

// WithTimeout sets the job's lease length: a worker that runs it longer
// without a heartbeat loses it (Workers heartbeat for their running jobs).
// Default: the server's (600 s unless configured). Rounded to milliseconds.
func WithTimeout(d time.Duration) SubmitOption {
	return func(r *pb.SubmitJobRequest) {
		ms := d.Milliseconds()
		if ms == 0 && d > 0 {
			ms = 1
		}
		r.TimeoutMs = &ms
	}
}

// WithPriority sets the job's priority: higher runs first among due jobs.
func WithPriority(p int32) SubmitOption {
	return func(r *pb.SubmitJobRequest) { r.Priority = p }
}

// WithRetry sets the job's retry policy.
func WithRetry(p RetryPolicy) SubmitOption {
	return func(r *pb.SubmitJobRequest) { r.Retry = p.pb() }
}

// WithKey sets the job's flow-control key: a tenant, an account, a host (at
// most 255 bytes; "" = none, the default). A task's per-key limits
// (TaskLimits.MaxRunningPerKey, RatePerKey) count jobs by key, and ready jobs
// of different keys are handed out in turn within a priority. It applies to
// Submit, SubmitMany, SubmitStream and RunJob alike; Job.Key echoes it.
func WithKey(key string) SubmitOption {
	return func(r *pb.SubmitJobRequest) { r.Key = key }
}

// SubmitResult is the answer to Submit.
type SubmitResult struct {
	JobID uint64
	// Replaced is true when a job with the same task and name existed and was replaced.
	Replaced bool
	// Running is true when a job with the same task and name is running: the submit was ignored.
	Running bool
}

func submitRequest(task, name string, args []byte, opts []SubmitOption) *pb.SubmitJobRequest {
	r := &pb.SubmitJobRequest{Task: task, Name: name, Args: args}
	for _, o := range opts {
		o(r)
	}
	return r
}

// Submit submits a job, or replaces the job with the same task and name. It
// returns once the job is committed to the server's store.
func (c *Client) Submit(ctx context.Context, task, name string, args []byte, opts ...SubmitOption) (*SubmitResult, error) {
	r, err := c.rpc.SubmitJob(ctx, submitRequest(task, name, args, opts))
	if err != nil {
		return nil, wrap(err, "submit %s/%s", task, name)
	}
	return &SubmitResult{JobID: r.GetJobId(), Replaced: r.GetReplaced(), Running: r.GetRunning()}, nil
}

// Submission is one job of a SubmitMany call.
type Submission struct {
	Task string
	Name string
	Args []byte
	Opts []SubmitOption
}

// SubmitMany submits (or replaces) many jobs in one call and one commit; the
// results are in the order of jobs. Every job is validated first: one invalid
// job fails the call (IsInvalidArgument, the message names it) and none is
// submitted.
func (c *Client) SubmitMany(ctx context.Context, jobs []Submission) ([]*SubmitResult, error) {
	req := &pb.SubmitJobsRequest{Jobs: make([]*pb.SubmitJobRequest, len(jobs))}
	for i, j := range jobs {
		req.Jobs[i] = submitRequest(j.Task, j.Name, j.Args, j.Opts)
	}
	r, err := c.rpc.SubmitJobs(ctx, req)
	if err != nil {
		return nil, wrap(err, "submit %d jobs", len(jobs))
	}
	out := make([]*SubmitResult, len(r.GetJobs()))
	for i, a := range r.GetJobs() {
		out[i] = &SubmitResult{JobID: a.GetJobId(), Replaced: a.GetReplaced(), Running: a.GetRunning()}
	}
	return out, nil
}

// RunResult is the answer to RunJob.
type RunResult struct {
	JobID  uint64
	Result []byte
}

// RunJob submits a job and waits for the worker's result. IsNoWorker(err) is
// true when no worker serves the task, IsJobFailed(err) when the worker failed
// the job. Unless a retry policy is given, a failed job is not retried.
func (c *Client) RunJob(ctx context.Context, task, name string, args []byte, opts ...SubmitOption) (*RunResult, error) {
	r, err := c.rpc.RunJob(ctx, submitRequest(task, name, args, opts))
	if err != nil {
		return nil, wrap(err, "run %s/%s", task, name)
	}
	return &RunResult{JobID: r.GetJobId(), Result: r.GetResult()}, nil
}

// Remove removes a pending, scheduled or running job; it returns the job's id.
func (c *Client) Remove(ctx context.Context, task, name string) (uint64, error) {
	r, err := c.rpc.RemoveJob(ctx, &pb.JobRef{Task: task, Name: name})
	if err != nil {
		return 0, wrap(err, "remove %s/%s", task, name)
	}
	return r.GetJobId(), nil
}

// RemoveByID removes a job by its id.
func (c *Client) RemoveByID(ctx context.Context, id uint64) error {
	if _, err := c.rpc.RemoveJob(ctx, &pb.JobRef{JobId: id}); err != nil {
		return wrap(err, "remove job %d", id)
	}
	return nil
}

// Get looks a job up by task and name (IsNotFound(err) when there is none:
// finished jobs are deleted).
func (c *Client) Get(ctx context.Context, task, name string) (*Job, error) {
	j, err := c.rpc.GetJob(ctx, &pb.JobRef{Task: task, Name: name})
	if err != nil {
		return nil, wrap(err, "get %s/%s", task, name)
	}
	return jobFromPB(j), nil
}

// GetByID looks a job up by its id.
func (c *Client) GetByID(ctx context.Context, id uint64) (*Job, error) {
	j, err := c.rpc.GetJob(ctx, &pb.JobRef{JobId: id})
	if err != nil {
		return nil, wrap(err, "get job %d", id)
	}
	return jobFromPB(j), nil
}

// Status returns per-task counts and totals; task "" means every task.
func (c *Client) Status(ctx context.Context, task string) (*Status, error) {
	r, err := c.rpc.Status(ctx, &pb.StatusRequest{Task: task})
	if err != nil {
		return nil, wrap(err, "status")
	}
	out := &Status{Totals: taskStatusFromPB(r.GetTotals())}
	for _, t := range r.GetTasks() {
		out.Tasks = append(out.Tasks, taskStatusFromPB(t))
	}
	return out, nil
}

// Drop removes a task and all of its jobs (live and dead); it returns how many
// jobs were removed. The server refuses while workers serve the task.
func (c *Client) Drop(ctx context.Context, task string) (uint64, error) {
	r, err := c.rpc.DropTask(ctx, &pb.DropTaskRequest{Task: task})
	if err != nil {
		return 0, wrap(err, "drop %s", task)
	}
	return r.GetRemoved(), nil
}

// ListDead lists jobs in the dead set; task "" means every task, limit 0 means 1000.
func (c *Client) ListDead(ctx context.Context, task string, limit int) ([]*Job, error) {
	if limit < 0 {
		limit = 0
	}
	r, err := c.rpc.ListDead(ctx, &pb.ListDeadRequest{Task: task, Limit: uint32(min(limit, math.MaxInt32))})
	if err != nil {
		return nil, wrap(err, "list dead %s", task)
	}
	jobs := make([]*Job, 0, len(r.GetJobs()))
	for _, j := range r.GetJobs() {
		jobs = append(jobs, jobFromPB(j))
	}
	return jobs, nil
}

// RetryDead moves dead jobs back to pending with their attempts reset: every
// dead job of task, or only the one named name. It returns how many moved.
func (c *Client) RetryDead(ctx context.Context, task, name string) (uint64, error) {
	r, err := c.rpc.RetryDead(ctx, &pb.DeadRef{Task: task, Name: name})
	if err != nil {
		return 0, wrap(err, "retry dead %s", deadRef(task, name))
	}
	return r.GetCount(), nil
}

// PurgeDead deletes dead jobs for good: every dead job of task (task "" means
// every task), or only the one named name. It returns how many were deleted.
func (c *Client) PurgeDead(ctx context.Context, task, name string) (uint64, error) {
	r, err := c.rpc.PurgeDead(ctx, &pb.DeadRef{Task: task, Name: name})
	if err != nil {
		return 0, wrap(err, "purge dead %s", deadRef(task, name))
	}
	return r.GetCount(), nil
}

func deadRef(task, name string) string {
	switch {
	case task == "":
		return "(every task)"
	case name == "":
		return task
	default:
		return fmt.Sprintf("%s/%s", task, name)
	}
}
