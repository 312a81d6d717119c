// Command client submits the job "Hello world!" for the func "random_print"
// (the Periodic seed example); run the worker next to it.
//
//	go run ./random_print/client -addr 127.0.0.1:5000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	taskhive "github.com/taskhive/taskhive/clients/go"
)

func main() {
	addr := flag.String("addr", envOr("TASKHIVE_ADDR", "127.0.0.1:5000"), "taskhive server address")
	name := flag.String("name", "Hello world!", "job name")
	task := flag.String("func", "random_print", "task (Periodic func) of the job")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := taskhive.Dial(ctx, *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer c.Close()
	r, err := c.Submit(ctx, *task, *name, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("submitted %s/%s (job %d)\n", *task, *name, r.JobID)
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
