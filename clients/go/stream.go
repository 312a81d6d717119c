package taskhive

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"google.golang.org/grpc/codes"

	pb "github.com/taskhive/taskhive/clients/go/taskhivepb"
)

// SubmitAck is the answer to one job of SubmitStream.
type SubmitAck struct {
	// Seq is the job's 0-based index in the stream.
	Seq uint64
	// The job's id and whether it replaced or met a running job (unset when Err is set).
	SubmitResult
	// Err is nil once the job is committed; else the error Submit would have
	// returned (IsInvalidArgument, its message naming the field, ...). Nothing was stored.
	Err error
}

// SubmitStream submits the jobs read from jobs over one stream without waiting
// for answers, and calls ack for each, in order, once it is committed (from the
// calling goroutine). Each job is judged on its own: a bad one gets an ack with
// Err and the others go on. It returns after the last ack once jobs is closed,
// or with the error that ended the stream (ctx done, connection lost).
func (c *Client) SubmitStream(ctx context.Context, jobs <-chan Submission, ack func(SubmitAck)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.SubmitStream(ctx)
	if err != nil {
		return wrap(err, "submit stream")
	}
	sendErr := make(chan error, 1)
	go func() {
		sendErr <- func() error {
			for {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case j, ok := <-jobs:
					if !ok {
						return stream.CloseSend()
					}
					// A failed Send means the stream ended; Recv reports why.
					if stream.Send(submitRequest(j.Task, j.Name, j.Args, j.Opts)) != nil {
						return nil
					}
				}
			}
		}()
	}()
	for {
		r, err := stream.Recv()
		if err == io.EOF {
			return wrap(<-sendErr, "submit stream")
		}
		if err != nil {
			return wrap(err, "submit stream")
		}
		for _, a := range r.GetAcks() {
			ack(ackOf(a))
		}
	}
}

func ackOf(a *pb.SubmitAck) SubmitAck {
	out := SubmitAck{
		Seq:          a.GetSeq(),
		SubmitResult: SubmitResult{JobID: a.GetJobId(), Replaced: a.GetReplaced(), Running: a.GetRunning()},
	}
	if name := a.GetErrorCode(); name != "" || a.GetCode() != pb.ErrorCode_ERROR_CODE_OK {
		// ErrorCode is numbered as the gRPC codes; a server older than it sends only the name.
		code := codes.Code(a.GetCode())
		if a.GetCode() == pb.ErrorCode_ERROR_CODE_OK && code.UnmarshalJSON([]byte(strconv.Quote(name))) != nil {
			code = codes.Unknown
		}
		out.Err = fmt.Errorf("taskhive: submit job %d: %w", a.GetSeq(), statusWithReason(code, a.GetError(), a.GetReason()))
	}
	return out
}
