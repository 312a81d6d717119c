// Command worker serves the func "random_print" (the Periodic seed example):
// it prints the job's count and name, runs it again a random 5..10 s later,
// and once the count is past 10 finishes it and prints "Finish!". It runs
// until interrupted (SIGINT or SIGTERM).
//
//	go run ./random_print/worker -addr 127.0.0.1:5000
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	taskhive "github.com/taskhive/taskhive/clients/go"
)

func main() {
	addr := flag.String("addr", envOr("TASKHIVE_ADDR", "127.0.0.1:5000"), "taskhive server address")
	maxCount := flag.Uint("max-count", 10, "finish the job once its count is past this")
	minDelay := flag.Duration("min-delay", 5*time.Second, "shortest delay before the job runs again")
	maxDelay := flag.Duration("max-delay", 10*time.Second, "longest delay before the job runs again")
	flag.Parse()
	if *maxDelay < *minDelay {
		fmt.Fprintln(os.Stderr, "-max-delay must not be below -min-delay")
		os.Exit(2)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	w := taskhive.NewWorker(taskhive.Addr(*addr))
	w.Handle("random_print", func(ctx context.Context, job *taskhive.Job) taskhive.Outcome {
		count := job.RunCount
		fmt.Println(count, job.Name)
		if uint(count) > *maxCount {
			fmt.Println("Finish!")
			return taskhive.Done(nil)
		}
		delay := *minDelay + rand.N(*maxDelay-*minDelay+1)
		return taskhive.SchedLater(delay)
	})
	if err := w.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
