package taskhive

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors returned by this package wrap the gRPC status of the failed call, so
// status.Code(err) and status.FromError(err) keep working on them; the helpers
// below name the cases callers usually branch on.

// IsNoWorker reports whether err says that no worker serves the job's task
// (RunJob on a task without a connected worker).
func IsNoWorker(err error) bool {
	return status.Code(err) == codes.FailedPrecondition && strings.Contains(errMessage(err), "no worker for task")
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

// errMessage is the message of the gRPC status wrapped in err.
func errMessage(err error) string {
	var gs interface{ GRPCStatus() *status.Status }
	if errors.As(err, &gs) {
		if s := gs.GRPCStatus(); s != nil {
			return s.Message()
		}
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

// wrap names the operation that failed, keeping the gRPC status reachable.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("taskhive: "+format+": %w", append(args, err)...)
}
