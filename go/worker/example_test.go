package worker_test

import (
	"context"
	"errors"
	"log"
	"os/signal"
	"syscall"

	"github.com/statesync/statesync/go/worker"
)

// A worker that replicates one namespace into a state directory and refuses
// values its application cannot use.
func Example() {
	w, err := worker.Open(worker.Config{
		Target:     "127.0.0.1:7070",
		ID:         "edge-1",
		Namespaces: []string{"app"},
		Dir:        "/var/lib/edge-1",
		Deltas:     true,
		Handler: func(e worker.Event) error {
			if cfg, ok := e.Value.(map[string]any); ok && e.Op == "put" && cfg["replicas"] == nil {
				return errors.New("a config needs replicas") // NACKed; the last good value stays
			}
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer w.Close()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := w.Run(ctx); !errors.Is(err, context.Canceled) {
		log.Print(err)
	}
}
