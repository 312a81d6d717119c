package taskhive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

// HandlerFunc runs one job and says how it ended. ctx is cancelled when:
//
//   - the server cancels the job (it was removed while running, or the cluster
//     node holding its lease gave it up): context.Cause(ctx) is a
//     *CancelledError, matching errors.Is(err, ErrJobCancelled), with the
//     server's reason. The handler's outcome is then not applied: return as
//     soon as the work is stopped, which frees the job's slot;
//   - the job's lease is lost (the stream to the server broke, or the server
//     gave the job away): context.Cause(ctx) wraps ErrLeaseLost;
//   - the worker's grace period after a stop has passed.
type HandlerFunc func(ctx context.Context, j *Job) Outcome

// Target is where a Worker gets its connection: a *Client, or an Addr.
type Target interface {
	workerClient(opts []DialOption) (c *Client, owned bool, err error)
}

// Addr is a server address used as a Worker's Target: the worker dials it
// when Run starts and closes the connection when Run returns.
type Addr string

func (a Addr) workerClient(opts []DialOption) (*Client, bool, error) {
	c, err := Dial(context.Background(), string(a), append([]DialOption{WithLazyConnect()}, opts...)...)
	return c, true, err
}

func (c *Client) workerClient([]DialOption) (*Client, bool, error) { return c, false, nil }

// ErrLeaseLost is the error of a Report whose outcome could not be applied
// because the job's lease was gone before the outcome reached the server
// (the stream broke, the lease expired, or the worker stopped without it).
var ErrLeaseLost = errors.New("taskhive: lease lost before the outcome was reported")

// ErrJobCancelled matches (errors.Is) the cause of a job's context, and the
// Err of its Report, when the server cancelled the job while it ran. The error
// itself is a *CancelledError carrying the server's reason.
var ErrJobCancelled = errors.New("taskhive: job cancelled by the server")

// CancelledError says the server cancelled a running job: it was removed, or
// the cluster node holding its lease gave it up. The lease no longer counts,
// so whatever the handler returns is not applied.
type CancelledError struct {
	JobID   uint64
	LeaseID uint64
	// Reason is the server's, for logs.
	Reason string
}

func (e *CancelledError) Error() string {
	return fmt.Sprintf("%v: job %d (lease %d): %s", ErrJobCancelled, e.JobID, e.LeaseID, e.Reason)
}

// Is makes errors.Is(err, ErrJobCancelled) true.
func (e *CancelledError) Is(target error) bool { return target == ErrJobCancelled }

// Report tells a report hook what became of one handled job.
type Report struct {
	Job     *Job
	Outcome Outcome
	// Err is nil when the server applied the outcome. Otherwise it wraps
	// ErrLeaseLost, ErrJobCancelled (a *CancelledError: the server cancelled
	// the job, so its outcome was not applied), or the server's rejection
	// (codes.FailedPrecondition; its reason, e.g. IsStaleLease, says why).
	Err error
}

type workerConfig struct {
	capacity   int
	name       string
	grace      time.Duration
	backoffMin time.Duration
	backoffMax time.Duration
	logger     *slog.Logger
	onReport   func(Report)
	onConnect  func(workerID string)
	dial       []DialOption
}

// WorkerOption configures a Worker.
type WorkerOption func(*workerConfig)

// WithCapacity sets how many jobs the worker runs at once (default 1).
func WithCapacity(n int) WorkerOption {
	return func(c *workerConfig) { c.capacity = max(n, 1) }
}

// WithWorkerName sets the name the server shows for the worker in its logs.
func WithWorkerName(name string) WorkerOption {
	return func(c *workerConfig) { c.name = name }
}

// WithGracePeriod sets how long running handlers may go on after Run's
// context is cancelled before their own contexts are cancelled (default 30 s).
func WithGracePeriod(d time.Duration) WorkerOption {
	return func(c *workerConfig) { c.grace = max(d, 0) }
}

// WithReconnectBackoff sets the exponential backoff between attempts to
// (re)open the work stream: first, doubling up to limit, with jitter
// (default 100 ms doubling up to 10 s).
func WithReconnectBackoff(first, limit time.Duration) WorkerOption {
	return func(c *workerConfig) {
		if first > 0 {
			c.backoffMin = first
		}
		c.backoffMax = max(limit, c.backoffMin)
	}
}

// WithLogger sets where the worker logs stream breaks, rejected results and
// recovered panics (default slog.Default()).
func WithLogger(l *slog.Logger) WorkerOption {
	return func(c *workerConfig) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithReportHook calls f (from the worker's loop: keep it quick) once for each
// handled job, after the server acknowledged or rejected its outcome, or when
// the outcome could not be delivered.
func WithReportHook(f func(Report)) WorkerOption {
	return func(c *workerConfig) { c.onReport = f }
}

// WithDialOptions sets how a worker whose target is an Addr dials it, e.g.
// WithToken(t) and WithCAFile(f) for a server with --auth and TLS. (A *Client
// target is used as it was dialled.)
func WithDialOptions(opts ...DialOption) WorkerOption {
	return func(c *workerConfig) { c.dial = append(c.dial, opts...) }
}

// WithConnectHook calls f each time the worker's stream is established and
// its tasks are registered (so jobs of them can be run from then on).
func WithConnectHook(f func(workerID string)) WorkerOption {
	return func(c *workerConfig) { c.onConnect = f }
}

// Worker runs jobs of the tasks it handles over the server's Work stream.
type Worker struct {
	target Target
	cfg    workerConfig

	mu        sync.Mutex
	handlers  map[string]HandlerFunc
	broadcast map[string]bool
	running   bool
	changed   chan struct{} // a handler was added while running
}

// NewWorker returns a worker that connects through target (a *Client, or an
// Addr to dial). Register handlers with Handle, then call Run.
func NewWorker(target Target, opts ...WorkerOption) *Worker {
	cfg := workerConfig{
		capacity:   1,
		grace:      30 * time.Second,
		backoffMin: 100 * time.Millisecond,
		backoffMax: 10 * time.Second,
		logger:     slog.Default(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	return &Worker{
		target:    target,
		cfg:       cfg,
		handlers:  map[string]HandlerFunc{},
		broadcast: map[string]bool{},
		changed:   make(chan struct{}, 1),
	}
}

// Handle registers h for the jobs of task. Handlers added while Run is running
// are announced to the server at once.
func (w *Worker) Handle(task string, h HandlerFunc) {
	w.handle(task, h, false)
}

// HandleBroadcast registers h for a broadcast task: every job of it goes to
// every worker registered for it (Periodic's BROADCAST).
func (w *Worker) HandleBroadcast(task string, h HandlerFunc) {
	w.handle(task, h, true)
}

func (w *Worker) handle(task string, h HandlerFunc, broadcast bool) {
	w.mu.Lock()
	w.handlers[task] = h
	w.broadcast[task] = broadcast
	w.mu.Unlock()
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *Worker) handler(task string) HandlerFunc {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.handlers[task]
}

// tasks lists the registered tasks, sorted, split into plain and broadcast.
func (w *Worker) tasks() (plain, broadcast []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for t := range w.handlers {
		if w.broadcast[t] {
			broadcast = append(broadcast, t)
		} else {
			plain = append(plain, t)
		}
	}
	slices.Sort(plain)
	slices.Sort(broadcast)
	return plain, broadcast
}

// Run serves jobs until ctx is cancelled, reconnecting with exponential
// backoff whenever the stream breaks. Once ctx is cancelled it takes no new
// jobs, lets running handlers finish (cancelling their contexts when the grace
// period has passed), reports their outcomes, and returns nil. Jobs received
// but not yet started then go back to the server. Run returns an error only
// when it cannot work at all (no handler, a request the server rejects, a
// closed Client).
func (w *Worker) Run(ctx context.Context) error {
	w.mu.Lock()
	switch {
	case w.running:
		w.mu.Unlock()
		return wrap(status.Error(codes.FailedPrecondition, "Run is already running"), "worker")
	case len(w.handlers) == 0:
		w.mu.Unlock()
		return wrap(status.Error(codes.InvalidArgument, "no handler registered"), "worker")
	}
	w.running = true
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		w.running = false
		w.mu.Unlock()
	}()

	if w.target == nil {
		return wrap(status.Error(codes.InvalidArgument, "no target (a *Client or an Addr)"), "worker")
	}
	c, owned, err := w.target.workerClient(w.cfg.dial)
	if err != nil {
		return err
	}
	if c == nil {
		return wrap(status.Error(codes.InvalidArgument, "nil *Client"), "worker")
	}
	if owned {
		defer c.Close()
	}
	hard, hardCancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hardCancel()
	r := &runner{
		w:          w,
		c:          c,
		ctx:        ctx,
		log:        w.cfg.logger,
		hard:       hard,
		hardCancel: hardCancel,
		done:       make(chan finished, w.cfg.capacity),
		beat:       time.NewTimer(time.Hour),
	}
	r.beat.Stop()
	return r.run()
}

// jobRun is one leased job held by the worker.
type jobRun struct {
	job      *Job
	sess     *session
	cancel   context.CancelCauseFunc
	started  bool
	lost     bool
	revoked  *CancelledError // the server cancelled the job: its lease no longer counts
	nextBeat time.Time
	outcome  Outcome
}

// stop cancels the handler's context (when it runs) with cause.
func (jr *jobRun) stop(cause error) {
	if jr.cancel != nil {
		jr.cancel(cause)
	}
}

type finished struct {
	jr  *jobRun
	out Outcome
}

type recvEvent struct {
	msg *pb.ServerMessage
	err error
}

// session is one Work stream.
type session struct {
	stream   pb.Scheduler_WorkClient
	cancel   context.CancelFunc
	workerID string
	send     chan *pb.WorkerMessage
	sendDone chan struct{}
	recv     chan recvEvent
	closed   bool                // CloseSend requested: nothing more is sent
	jobs     map[uint64]*jobRun  // held leases (queued or started), by lease
	queue    []*jobRun           // received, waiting for a free slot
	acks     map[uint64]*jobRun  // reported, waiting for the server's ack
	tasks    map[string]struct{} // tasks announced on this stream
	active   int                 // started and not finished
	since    time.Time
}

func (s *session) enqueue(m *pb.WorkerMessage) {
	if s.closed {
		return
	}
	select {
	case s.send <- m:
	case <-s.sendDone:
	}
}

func (s *session) closeSend() {
	if !s.closed {
		s.closed = true
		close(s.send)
	}
}

const (
	welcomeTimeout = 10 * time.Second // for the server's welcome after hello
	drainTimeout   = 5 * time.Second  // for the server's last acks after CloseSend
	abandonAfter   = 5 * time.Second  // after the grace period, for handlers to return
	stableSession  = 5 * time.Second  // a session this long resets the backoff
)

// errStopped says Run's context was cancelled.
var errStopped = errors.New("stopped")

type runner struct {
	w          *Worker
	c          *Client
	ctx        context.Context
	log        *slog.Logger
	hard       context.Context // parent of handler contexts; cancelled after the grace period
	hardCancel context.CancelFunc
	done       chan finished
	running    int // handlers running, across sessions
	beat       *time.Timer

	stopping bool
	abandon  chan struct{} // closed when Run stops waiting for handlers
	graceT   *time.Timer
	abandonT *time.Timer
}

func (r *runner) run() error {
	defer func() {
		if r.graceT != nil {
			r.graceT.Stop()
			r.abandonT.Stop()
		}
	}()
	backoff := r.w.cfg.backoffMin
	for {
		if r.ctx.Err() != nil {
			r.beginStop()
			r.waitHandlers()
			return nil
		}
		s, err := r.connect()
		what := "cannot open work stream"
		switch {
		case errors.Is(err, errStopped):
			continue
		case err != nil && permanent(err):
			r.beginStop()
			r.waitHandlers()
			return wrap(err, "work")
		case err == nil:
			if r.w.cfg.onConnect != nil {
				r.w.cfg.onConnect(s.workerID)
			}
			err = r.serve(s)
			if r.stopping {
				r.waitHandlers()
				return nil
			}
			if time.Since(s.since) >= stableSession {
				backoff = r.w.cfg.backoffMin
			}
			what = "work stream broke"
		}
		// Wait out the backoff (exponential, with jitter), still collecting
		// the handlers of lost sessions.
		wait := backoff/2 + rand.N(backoff/2+1)
		backoff = min(backoff*2, r.w.cfg.backoffMax)
		r.log.Warn("taskhive worker: "+what, "addr", r.c.addr, "err", err, "retry_in", wait)
		t := time.NewTimer(wait)
	backoffWait:
		for {
			select {
			case f := <-r.done:
				r.finish(f, nil)
			case <-r.ctx.Done():
				break backoffWait
			case <-t.C:
				break backoffWait
			}
		}
		t.Stop()
	}
}

// permanent reports whether reconnecting cannot help.
func permanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated, codes.Canceled:
		return true
	}
	return false
}

func (r *runner) hello(plain, broadcast []string, capacity int) *pb.WorkerMessage {
	return &pb.WorkerMessage{Msg: &pb.WorkerMessage_Hello{Hello: &pb.WorkerHello{
		Tasks:          plain,
		BroadcastTasks: broadcast,
		Capacity:       uint32(min(capacity, 1<<20)),
		Name:           r.w.cfg.name,
	}}}
}

// connect opens a Work stream, says hello and waits for the welcome.
func (r *runner) connect() (*session, error) {
	sctx, cancel := context.WithCancel(context.WithoutCancel(r.ctx))
	stream, err := r.c.rpc.Work(sctx)
	if err != nil {
		cancel()
		return nil, err
	}
	plain, broadcast := r.w.tasks()
	s := &session{
		stream:   stream,
		cancel:   cancel,
		send:     make(chan *pb.WorkerMessage, 256),
		sendDone: make(chan struct{}),
		recv:     make(chan recvEvent, 16),
		jobs:     map[uint64]*jobRun{},
		acks:     map[uint64]*jobRun{},
		tasks:    map[string]struct{}{},
		since:    time.Now(),
	}
	for _, t := range append(slices.Clone(plain), broadcast...) {
		s.tasks[t] = struct{}{}
	}
	if err := stream.Send(r.hello(plain, broadcast, r.w.cfg.capacity)); err != nil {
		// The stream's status comes with Recv.
		_, err = stream.Recv()
		cancel()
		return nil, err
	}
	go func() {
		for {
			m, err := stream.Recv()
			select {
			case s.recv <- recvEvent{msg: m, err: err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	t := time.NewTimer(welcomeTimeout)
	defer t.Stop()
	select {
	case ev := <-s.recv:
		if ev.err != nil {
			cancel()
			return nil, ev.err
		}
		wl := ev.msg.GetWelcome()
		if wl == nil {
			cancel()
			return nil, status.Errorf(codes.Internal, "expected a welcome, got %T", ev.msg.GetMsg())
		}
		s.workerID = wl.GetWorkerId()
	case <-t.C:
		cancel()
		return nil, status.Error(codes.DeadlineExceeded, "no welcome from the server")
	case <-r.ctx.Done():
		cancel()
		return nil, errStopped
	}
	go func() {
		defer close(s.sendDone)
		for m := range s.send {
			if err := stream.Send(m); err != nil {
				return
			}
		}
		_ = stream.CloseSend()
	}()
	return s, nil
}

// serve runs one session until the stream ends; it returns why.
func (r *runner) serve(s *session) error {
	defer s.cancel()
	ctxDone := r.ctx.Done()
	if r.stopping {
		ctxDone = nil
	}
	var drain <-chan time.Time
	for {
		if r.stopping && s.active == 0 && !s.closed {
			// Nothing of ours runs any more: close our side; the server
			// flushes its last acks, then ends the stream.
			s.closeSend()
			drain = time.After(drainTimeout)
		}
		select {
		case ev := <-s.recv:
			if ev.err != nil {
				weClosed := s.closed
				r.sessionOver(s)
				if weClosed {
					return nil
				}
				if errors.Is(ev.err, io.EOF) {
					return errors.New("the server ended the stream")
				}
				return ev.err
			}
			r.onMessage(s, ev.msg)
		case f := <-r.done:
			r.finish(f, s)
		case <-r.beat.C:
			r.heartbeat(s)
		case <-r.w.changed:
			r.announce(s)
		case <-ctxDone:
			ctxDone = nil
			r.beginStop()
			if s.active > 0 {
				// A later hello with capacity 0 pauses this worker: no job is pushed
				// to it while it drains, so closing afterwards loses nothing.
				plain, broadcast := r.w.tasks()
				s.enqueue(r.hello(plain, broadcast, 0))
			}
		case <-r.abandon:
			r.log.Warn("taskhive worker: handlers did not return after the grace period; abandoning them", "running", r.running)
			r.sessionOver(s)
			return nil
		case <-drain:
			r.sessionOver(s)
			return nil
		}
	}
}

// beginStop starts the graceful stop: no new jobs; the grace period runs.
func (r *runner) beginStop() {
	if r.stopping {
		return
	}
	r.stopping = true
	r.graceT = time.AfterFunc(r.w.cfg.grace, r.hardCancel)
	r.abandon = make(chan struct{})
	r.abandonT = time.AfterFunc(r.w.cfg.grace+abandonAfter, func() { close(r.abandon) })
}

// waitHandlers waits for running handlers (of sessions that are over) to return.
func (r *runner) waitHandlers() {
	for r.running > 0 {
		select {
		case f := <-r.done:
			r.finish(f, nil)
		case <-r.abandon:
			r.log.Warn("taskhive worker: handlers did not return after the grace period; abandoning them", "running", r.running)
			return
		}
	}
}

// sessionOver settles what a session held: its leases are gone with it.
func (r *runner) sessionOver(s *session) {
	s.closeSend()
	s.cancel()
	for _, jr := range s.jobs {
		jr.lost = true
		jr.stop(fmt.Errorf("%w: the work stream ended", ErrLeaseLost))
	}
	s.queue = nil
	for lease, jr := range s.acks {
		delete(s.acks, lease)
		r.report(jr, fmt.Errorf("%w: the stream ended before the server acknowledged it", ErrLeaseLost))
	}
	r.beat.Stop()
}

func (r *runner) onMessage(s *session, m *pb.ServerMessage) {
	switch msg := m.GetMsg().(type) {
	case *pb.ServerMessage_Job:
		j := jobFromPB(msg.Job)
		jr := &jobRun{job: j, sess: s, nextBeat: time.Now().Add(beatInterval(j.Timeout))}
		s.jobs[j.LeaseID] = jr
		s.queue = append(s.queue, jr)
		r.armBeat(s)
		r.startQueued(s)
	case *pb.ServerMessage_Ack:
		jr, ok := s.acks[msg.Ack.GetLeaseId()]
		if !ok {
			return
		}
		delete(s.acks, msg.Ack.GetLeaseId())
		var err error
		switch e := msg.Ack.GetError(); {
		case e == "":
		case jr.revoked != nil:
			// Expected: the lease of a cancelled job no longer counts.
			r.log.Debug("taskhive worker: result of a cancelled job refused", "task", jr.job.Task, "name", jr.job.Name, "lease", jr.job.LeaseID, "err", e)
			err = jr.revoked
		default:
			err = statusWithReason(codes.FailedPrecondition, e, msg.Ack.GetReason())
			r.log.Warn("taskhive worker: server rejected a result", "task", jr.job.Task, "name", jr.job.Name, "lease", jr.job.LeaseID, "err", e)
		}
		r.report(jr, err)
	case *pb.ServerMessage_Cancel:
		r.onCancel(s, msg.Cancel)
	case *pb.ServerMessage_Heartbeat:
		for _, lease := range msg.Heartbeat.GetLostLeaseIds() {
			jr, ok := s.jobs[lease]
			if !ok {
				continue
			}
			jr.lost = true
			jr.stop(fmt.Errorf("%w: the server no longer holds it", ErrLeaseLost))
			if !jr.started {
				delete(s.jobs, lease)
				s.queue = slices.DeleteFunc(s.queue, func(q *jobRun) bool { return q == jr })
			}
		}
	}
}

// onCancel stops a job the server cancelled. Its lease stays held (and its slot
// taken, here and on the server) until the handler returns; the worker then
// reports it, and the server's refusal, which frees the slot, is expected.
func (r *runner) onCancel(s *session, c *pb.CancelJob) {
	cause := &CancelledError{JobID: c.GetJobId(), LeaseID: c.GetLeaseId(), Reason: c.GetReason()}
	jr, ok := s.jobs[c.GetLeaseId()]
	if !ok {
		// Already finished: its result, sent or on its way, will be refused.
		if jr, ok = s.acks[c.GetLeaseId()]; ok && jr.revoked == nil {
			jr.revoked = cause
		}
		return
	}
	if jr.revoked != nil {
		return
	}
	jr.revoked = cause
	r.log.Info("taskhive worker: job cancelled by the server", "task", jr.job.Task, "name", jr.job.Name, "lease", jr.job.LeaseID, "reason", cause.Reason)
	if jr.started {
		jr.stop(cause)
		return
	}
	// Not started: release the lease at once.
	delete(s.jobs, jr.job.LeaseID)
	s.queue = slices.DeleteFunc(s.queue, func(q *jobRun) bool { return q == jr })
	jr.outcome = Fail(cause)
	r.release(s, jr)
}

// release reports a cancelled job's lease so the server frees its slot; the
// server refuses the report (the lease no longer counts), which is expected.
func (r *runner) release(s *session, jr *jobRun) {
	s.acks[jr.job.LeaseID] = jr
	s.enqueue(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Result{Result: &pb.WorkerResult{
		LeaseId: jr.job.LeaseID,
		Outcome: Fail(jr.revoked).pb(),
	}}})
}

// startQueued starts queued jobs while there are free slots.
func (r *runner) startQueued(s *session) {
	for !r.stopping && r.running < r.w.cfg.capacity && len(s.queue) > 0 {
		jr := s.queue[0]
		s.queue = s.queue[1:]
		r.start(s, jr)
	}
}

func (r *runner) start(s *session, jr *jobRun) {
	h := r.w.handler(jr.job.Task)
	if h == nil {
		h = func(context.Context, *Job) Outcome {
			return Fail(fmt.Errorf("no handler for task %q in this worker", jr.job.Task))
		}
	}
	jctx, cancel := context.WithCancelCause(r.hard)
	jr.cancel = cancel
	jr.started = true
	s.active++
	r.running++
	job := *jr.job
	go func() {
		out := r.call(jctx, h, &job)
		cancel(nil)
		r.done <- finished{jr: jr, out: out}
	}()
}

// call runs a handler, turning a panic into a failure.
func (r *runner) call(ctx context.Context, h HandlerFunc, j *Job) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			r.log.Error("taskhive worker: handler panicked", "task", j.Task, "name", j.Name, "panic", p, "stack", string(debug.Stack()))
			out = Fail(fmt.Errorf("panic: %v", p))
		}
	}()
	ctx, span := workSpan(ctx, j)
	defer func() { endWorkSpan(span, out) }()
	return h(ctx, j)
}

// finish takes a handler's outcome: reported on its session when the lease is still held.
func (r *runner) finish(f finished, cur *session) {
	r.running--
	jr := f.jr
	jr.outcome = f.out
	s := jr.sess
	s.active--
	delete(s.jobs, jr.job.LeaseID)
	switch {
	case s != cur || s.closed:
		r.report(jr, fmt.Errorf("%w (%s/%s, lease %d)", ErrLeaseLost, jr.job.Task, jr.job.Name, jr.job.LeaseID))
	case jr.revoked != nil:
		// The handler's outcome is not applied; reporting the lease frees its slot
		// (also when a heartbeat answer said it was lost before the cancel came).
		r.release(s, jr)
	case jr.lost:
		r.report(jr, fmt.Errorf("%w (%s/%s, lease %d)", ErrLeaseLost, jr.job.Task, jr.job.Name, jr.job.LeaseID))
	default:
		s.acks[jr.job.LeaseID] = jr
		s.enqueue(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Result{Result: &pb.WorkerResult{
			LeaseId: jr.job.LeaseID,
			Outcome: f.out.pb(),
		}}})
	}
	if cur != nil {
		r.startQueued(cur)
	}
}

func (r *runner) report(jr *jobRun, err error) {
	if r.w.cfg.onReport != nil {
		r.w.cfg.onReport(Report{Job: jr.job, Outcome: jr.outcome, Err: err})
	}
}

// announce tells the server about handlers added while running.
func (r *runner) announce(s *session) {
	if r.stopping {
		return
	}
	plain, broadcast := r.w.tasks()
	var newPlain, newBroadcast []string
	for _, t := range plain {
		if _, ok := s.tasks[t]; !ok {
			newPlain = append(newPlain, t)
			s.tasks[t] = struct{}{}
		}
	}
	for _, t := range broadcast {
		if _, ok := s.tasks[t]; !ok {
			newBroadcast = append(newBroadcast, t)
			s.tasks[t] = struct{}{}
		}
	}
	if len(newPlain)+len(newBroadcast) > 0 {
		s.enqueue(r.hello(newPlain, newBroadcast, r.w.cfg.capacity))
	}
}

// beatInterval is how often a lease of the given length is extended.
func beatInterval(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return time.Second
	}
	return max(timeout/3, 10*time.Millisecond)
}

// armBeat sets the heartbeat timer to the earliest due lease of s.
func (r *runner) armBeat(s *session) {
	var next time.Time
	for _, jr := range s.jobs {
		if jr.lost || jr.revoked != nil {
			continue
		}
		if next.IsZero() || jr.nextBeat.Before(next) {
			next = jr.nextBeat
		}
	}
	if next.IsZero() {
		r.beat.Stop()
		return
	}
	r.beat.Reset(max(time.Until(next), 0))
}

// heartbeat extends the leases that are due.
func (r *runner) heartbeat(s *session) {
	now := time.Now()
	var due []uint64
	for lease, jr := range s.jobs {
		if !jr.lost && jr.revoked == nil && !jr.nextBeat.After(now.Add(5*time.Millisecond)) {
			due = append(due, lease)
			jr.nextBeat = now.Add(beatInterval(jr.job.Timeout))
		}
	}
	if len(due) > 0 {
		slices.Sort(due)
		s.enqueue(&pb.WorkerMessage{Msg: &pb.WorkerMessage_Heartbeat{Heartbeat: &pb.HeartbeatRequest{LeaseIds: due}}})
	}
	r.armBeat(s)
}
