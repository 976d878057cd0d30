// Command statesync-go-worker runs a Go statesync worker: it replicates the
// given namespaces from a controller into a state directory and logs what it
// does as JSON lines on stderr.
//
//	statesync-go-worker -target 127.0.0.1:7070 -id w1 -ns app,flags -dir ./state \
//	    -schema app=app.schema.json
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/worker"
)

func main() {
	target := flag.String("target", "127.0.0.1:7070", "the controller's gRPC address")
	id := flag.String("id", "", "the worker id (stable across restarts)")
	namespaces := flag.String("ns", "", "comma-separated namespaces to replicate")
	dir := flag.String("dir", "", "the state directory")
	deltas := flag.Bool("deltas", false, "ask for JSON Patch deltas")
	heartbeat := flag.Duration("heartbeat", time.Second, "heartbeat interval")
	staleAfter := flag.Duration("stale-after", 5*time.Second, "silence after which the stream is stale")
	schemas := map[string]any{}
	flag.Func("schema", "NS=FILE: validate NS's values against the JSON Schema in FILE at apply (repeatable)", func(arg string) error {
		ns, path, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("want NS=FILE, got %q", arg)
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		doc, err := canonical.Parse(text)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		schemas[ns] = doc
		return nil
	})
	flag.Parse()
	if *id == "" || *namespaces == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "statesync-go-worker: -id, -ns and -dir are required")
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	w, err := worker.Open(worker.Config{
		Target: *target, ID: *id, Namespaces: strings.Split(*namespaces, ","), Dir: *dir,
		Deltas: *deltas, Heartbeat: *heartbeat, StaleAfter: *staleAfter, Schemas: schemas, Logger: logger,
	})
	if err != nil {
		logger.Error("cannot open the worker", "error", err)
		os.Exit(5)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("worker started", "rev", w.AppliedRev())
	runErr := w.Run(ctx)
	if err := w.Close(); err != nil {
		logger.Error("closing the replica", "error", err)
	}
	if runErr != nil && ctx.Err() == nil {
		logger.Error("worker stopped", "error", runErr)
		os.Exit(7)
	}
	logger.Info("worker stopped", "rev", w.AppliedRev())
}
