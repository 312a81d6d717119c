// Command noop_worker serves one task (by default the load runner's remote class "noop") and
// answers every job done at once, with a JSON result the load runner reads. It measures what
// a remote task run costs (bench/remote-tasks). It runs until interrupted.
//
//	go run ./noop_worker -addr 127.0.0.1:5000 -task noop -capacity 64
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	taskhive "github.com/taskhive/taskhive/clients/go"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:5000", "taskhive server address")
	task := flag.String("task", "noop", "the task (remote class) to serve")
	capacity := flag.Int("capacity", 64, "jobs run at once")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	result := []byte(`{"request_context": "noop"}`)
	w := taskhive.NewWorker(taskhive.Addr(*addr), taskhive.WithCapacity(*capacity),
		taskhive.WithConnectHook(func(string) { fmt.Println("connected") }))
	w.Handle(*task, func(context.Context, *taskhive.Job) taskhive.Outcome {
		return taskhive.Done(result)
	})
	if err := w.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "noop_worker:", err)
		os.Exit(1)
	}
}
