package taskhive

import (
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors returned by this package wrap the gRPC status of the failed call, so
// status.Code(err) and status.FromError(err) keep working on them; the helpers
// below name the cases callers usually branch on. They read the server's
// machine reason (a google.rpc.ErrorInfo in the status details, domain
// "taskhive"), never the message, which is for people and may be reworded.

// Reasons the server gives in google.rpc.ErrorInfo (domain ReasonDomain).
const (
	ReasonInvalidArgument   = "INVALID_ARGUMENT"
	ReasonNotFound          = "NOT_FOUND"
	ReasonNoWorker          = "NO_WORKER"
	ReasonStaleLease        = "STALE_LEASE"
	ReasonWorkersPresent    = "WORKERS_PRESENT"
	ReasonWorkerAttached    = "WORKER_ATTACHED"
	ReasonJobRunning        = "JOB_RUNNING"
	ReasonJobFailed         = "JOB_FAILED"
	ReasonResourceExhausted = "RESOURCE_EXHAUSTED"
	ReasonStoreUnavailable  = "STORE_UNAVAILABLE"
	ReasonShuttingDown      = "SHUTTING_DOWN"
	// ReasonTooFewAgents: an Exec asked for more load agents than are connected.
	ReasonTooFewAgents = "TOO_FEW_AGENTS"
)

// ReasonDomain is the google.rpc.ErrorInfo domain of the server's reasons.
const ReasonDomain = "taskhive"

// Reason is the server's machine reason for err (one of the Reason*
// constants), read from the google.rpc.ErrorInfo in its gRPC status details;
// "" when err carries none (a transport failure, or an older server).
func Reason(err error) string {
	if info := errorInfo(err); info != nil {
		return info.GetReason()
	}
	return ""
}

// ErrorMetadata is the data the server attached to err's reason: "task",
// "name", "lease", "job", "worker", "workers", "field", and for
// ReasonStaleLease a "cause". Nil when err carries no reason.
func ErrorMetadata(err error) map[string]string {
	if info := errorInfo(err); info != nil {
		return info.GetMetadata()
	}
	return nil
}

// IsNoWorker reports whether err says that no worker serves the job's task
// (RunJob on a task without a connected worker).
func IsNoWorker(err error) bool {
	return Reason(err) == ReasonNoWorker
}

// IsStaleLease reports whether err says that the lease a result or heartbeat
// named is not current any more (it expired, was reassigned or was already
// reported, or its job was removed or claimed by another cluster node).
func IsStaleLease(err error) bool {
	return Reason(err) == ReasonStaleLease
}

// IsWorkersPresent reports whether err says that a task cannot be dropped
// while workers are registered for it.
func IsWorkersPresent(err error) bool {
	return Reason(err) == ReasonWorkersPresent
}

// IsNotFound reports whether err says that the job, task or worker does not exist.
func IsNotFound(err error) bool {
	return status.Code(err) == codes.NotFound
}

// IsJobFailed reports whether err says that the worker reported a failure for
// the job (RunJob). The worker's error text is part of err's message.
func IsJobFailed(err error) bool {
	return status.Code(err) == codes.Aborted
}

// IsInvalidArgument reports whether the server rejected a request field.
func IsInvalidArgument(err error) bool {
	return status.Code(err) == codes.InvalidArgument
}

// IsUnavailable reports whether the server could not be reached, is shutting
// down or could not commit the operation to its store.
func IsUnavailable(err error) bool {
	return status.Code(err) == codes.Unavailable
}

// IsUnauthenticated reports whether the server (started with --auth) refused
// the call for a missing or unknown token.
func IsUnauthenticated(err error) bool {
	return status.Code(err) == codes.Unauthenticated
}

// IsPermissionDenied reports whether the token's role may not make the call.
func IsPermissionDenied(err error) bool {
	return status.Code(err) == codes.PermissionDenied
}

// errorInfo is the google.rpc.ErrorInfo of the taskhive domain in err's
// gRPC status details, or nil.
func errorInfo(err error) *errdetails.ErrorInfo {
	var gs interface{ GRPCStatus() *status.Status }
	if err == nil || !errors.As(err, &gs) {
		return nil
	}
	s := gs.GRPCStatus()
	if s == nil {
		return nil
	}
	for _, d := range s.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ReasonDomain {
			return info
		}
	}
	return nil
}

// statusWithReason is a gRPC status error carrying reason as a
// google.rpc.ErrorInfo, as the server would send it (for rejections that
// arrive as stream messages rather than call statuses).
func statusWithReason(code codes.Code, msg, reason string) error {
	s := status.New(code, msg)
	if reason == "" {
		return s.Err()
	}
	if withInfo, err := s.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ReasonDomain}); err == nil {
		return withInfo.Err()
	}
	return s.Err()
}

// wrap names the operation that failed, keeping the gRPC status reachable.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("taskhive: "+format+": %w", append(args, err)...)
}
