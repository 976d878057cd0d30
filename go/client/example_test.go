package client_test

import (
	"context"
	"errors"
	"log"

	"github.com/statesync/statesync/go/client"
)

// A compare-and-set that may be retried: the command id makes a retry of a
// command that did commit harmless.
func Example() {
	ctx := context.Background()
	c, err := client.Dial("127.0.0.1:7070")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	entry, err := c.Get(ctx, "app", "config", 0)
	if err != nil && !errors.Is(err, client.ErrNotFound) {
		log.Fatal(err)
	}
	cmd := client.NewCommand().WithID("deploy-42").
		Put("app", "config", map[string]any{"replicas": 3}).
		IfModRev("app", "config", entry.GetModRev()) // 0 (absent) when there was no entry
	reply, err := c.Commit(ctx, cmd)
	var e *client.Error
	switch {
	case errors.Is(err, client.ErrConflict) && errors.As(err, &e):
		log.Printf("nothing written, re-read and rebuild: %+v", e.Failed())
	case errors.As(err, &e) && e.Retryable():
		log.Printf("try the same command again later: %v", e)
	case err != nil:
		log.Fatal(err)
	default:
		log.Printf("committed at revision %d", reply.GetRev())
	}
}
