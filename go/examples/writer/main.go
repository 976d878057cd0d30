// Command writer shows the Go writer client against a controller: a put with
// a command id, a read back, a compare that fails with its typed error, a
// retry of the same command id, and a missing key. It prints one JSON object
// with what it saw.
//
//	go run ./examples/writer -target 127.0.0.1:7070 -ns app -key greeting
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/statesync/statesync/go/client"
)

func main() {
	target := flag.String("target", "127.0.0.1:7070", "the controller's gRPC address")
	ns := flag.String("ns", "app", "the namespace")
	key := flag.String("key", "greeting", "the key to write")
	flag.Parse()
	if err := run(*target, *ns, *key); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
}

func run(target, ns, key string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(target)
	if err != nil {
		return err
	}
	defer c.Close()
	report := map[string]any{}

	// A put that may be retried: it carries its own command id.
	put := client.NewCommand().WithID("go-writer-1").
		Put(ns, key, map[string]any{"from": "go", "n": 1}).IfExists(ns, key, false)
	committed, err := c.Commit(ctx, put)
	if err != nil {
		return fmt.Errorf("put: %w", err)
	}
	report["put_rev"] = committed.GetRev()

	got, err := c.Get(ctx, ns, key, 0)
	if err != nil {
		return fmt.Errorf("get: %w", err)
	}
	report["get_value"] = string(got.GetValue())
	report["get_mod_rev"] = got.GetModRev()

	// A compare that cannot hold: the key was just written.
	_, err = c.Commit(ctx, client.NewCommand().Put(ns, key, "overwritten").IfModRev(ns, key, committed.GetRev()-1))
	var conflict *client.Error
	if !errors.As(err, &conflict) || !errors.Is(err, client.ErrConflict) {
		return fmt.Errorf("a stale compare did not fail with ConflictError: %v", err)
	}
	failed := conflict.Failed()
	report["conflict"] = map[string]any{
		"code": conflict.Code, "retryable": conflict.Retryable(), "failed": failed, "message": conflict.Message,
	}

	// The same command id again: the original result, nothing written.
	replay, err := c.Commit(ctx, put)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	report["replay_rev"], report["replayed"] = replay.GetRev(), replay.GetReplayed()

	entries, rangeRev, err := c.Range(ctx, ns, "", 0)
	if err != nil {
		return fmt.Errorf("range: %w", err)
	}
	report["range_keys"], report["range_rev"] = len(entries), rangeRev

	_, err = c.Get(ctx, ns, key+"-missing", 0)
	report["missing_is_not_found"] = errors.Is(err, client.ErrNotFound)

	return json.NewEncoder(os.Stdout).Encode(report)
}
