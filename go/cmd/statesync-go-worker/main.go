// Command statesync-go-worker runs a Go statesync worker: it replicates the
// given namespaces from a controller into a state directory (without -dir, in
// memory: every start bootstraps from a snapshot) and logs what it does as
// JSON lines on stderr.
//
//	statesync-go-worker -target 127.0.0.1:7070 -id w1 -ns app,flags -dir ./state \
//	    -schema app=app.schema.json
//
// With -events, it also prints JSON lines on stdout for programs that measure
// it: "revs" one {"applied_rev":N,"t":UNIX} each time the applied revision
// advances, "changes" also one {"rev":N,"ns":..,"key":..,"op":..,"t":UNIX}
// per change, printed once its revision is applied.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/worker"
)

func main() {
	target := flag.String("target", "127.0.0.1:7070", "the controller's gRPC address")
	id := flag.String("id", "", "the worker id (stable across restarts)")
	namespaces := flag.String("ns", "", "comma-separated namespaces to replicate")
	dir := flag.String("dir", "", "the state directory (default: the replica is kept in memory only)")
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
	versions := map[string][]int32{}
	flag.Func("versions", "NS=V1,V2: the schema versions this worker understands in NS (repeatable)", func(arg string) error {
		ns, list, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("want NS=V1,V2, got %q", arg)
		}
		for _, item := range strings.Split(list, ",") {
			v, err := strconv.ParseInt(item, 10, 32)
			if err != nil || v < 1 {
				return fmt.Errorf("%q is not a schema version", item)
			}
			versions[ns] = append(versions[ns], int32(v))
		}
		return nil
	})
	events := flag.String("events", "", `print JSON lines on stdout: "revs" (each applied revision) or "changes" (also each change)`)
	dump := flag.Bool("dump", false, "print the replica in -dir as JSON and exit (the worker must not be running)")
	cpuProfile := flag.String("cpuprofile", "", "write a pprof CPU profile of the run to this file")
	flag.Parse()
	if *dump {
		if *dir == "" {
			fmt.Fprintln(os.Stderr, "statesync-go-worker: -dump needs -dir")
			os.Exit(2)
		}
		if err := dumpReplica(*dir); err != nil {
			fmt.Fprintln(os.Stderr, "statesync-go-worker:", err)
			os.Exit(5)
		}
		return
	}
	if *id == "" || *namespaces == "" {
		fmt.Fprintln(os.Stderr, "statesync-go-worker: -id and -ns are required")
		os.Exit(2)
	}
	if *events != "" && *events != "revs" && *events != "changes" {
		fmt.Fprintf(os.Stderr, "statesync-go-worker: -events %q is not revs or changes\n", *events)
		os.Exit(2)
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	printer := &eventPrinter{out: bufio.NewWriter(os.Stdout)}
	var handler worker.Handler
	if *events == "changes" {
		handler = printer.accept
	}
	w, err := worker.Open(worker.Config{
		Target: *target, ID: *id, Namespaces: strings.Split(*namespaces, ","), Dir: *dir,
		Deltas: *deltas, Heartbeat: *heartbeat, StaleAfter: *staleAfter, Schemas: schemas, Versions: versions,
		Handler: handler, Logger: logger,
	})
	if err != nil {
		logger.Error("cannot open the worker", "error", err)
		os.Exit(5)
	}
	stopProfile := func() {}
	if *cpuProfile != "" {
		if stopProfile, err = startCPUProfile(*cpuProfile); err != nil {
			logger.Error("cannot start the CPU profile", "error", err)
			os.Exit(2)
		}
	}
	defer stopProfile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger.Info("worker started", "rev", w.AppliedRev())
	if *events != "" {
		go printer.follow(ctx, w)
	}
	runErr := w.Run(ctx)
	if err := w.Close(); err != nil {
		logger.Error("closing the replica", "error", err)
	}
	if runErr != nil && ctx.Err() == nil {
		logger.Error("worker stopped", "error", runErr)
		stopProfile() // os.Exit runs no deferred calls
		os.Exit(7)
	}
	logger.Info("worker stopped", "rev", w.AppliedRev())
}

// startCPUProfile profiles the process into path until the returned stop.
func startCPUProfile(path string) (func(), error) {
	file, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(file); err != nil {
		_ = file.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		_ = file.Close()
	}, nil
}

// dumpReplica prints {applied_rev, namespaces: {ns: {key: value}}, held: [...]}.
func dumpReplica(dir string) error {
	replica, state, err := worker.OpenReplica(dir)
	if err != nil {
		return err
	}
	defer replica.Close()
	namespaces := map[string]map[string]any{}
	for ref, e := range state.Entries {
		value, err := canonical.Parse(e.Value)
		if err != nil {
			return fmt.Errorf("%s/%s: %w", ref.NS, ref.Key, err)
		}
		if namespaces[ref.NS] == nil {
			namespaces[ref.NS] = map[string]any{}
		}
		namespaces[ref.NS][ref.Key] = value
	}
	held := []map[string]any{}
	for ref, h := range state.Held {
		held = append(held, map[string]any{"ns": ref.NS, "key": ref.Key, "rev": h.Rev, "reason": h.Reason})
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{
		"applied_rev": state.Rev, "namespaces": namespaces, "held": held,
	})
}

// eventPrinter prints what -events asks for. The handler runs before a change
// is applied, so accepted changes wait until the worker has applied their revision.
type eventPrinter struct {
	mu      sync.Mutex
	pending []worker.Event
	out     *bufio.Writer
}

func (p *eventPrinter) accept(e worker.Event) error {
	p.mu.Lock()
	p.pending = append(p.pending, e)
	p.mu.Unlock()
	return nil
}

// follow prints each advance of the applied revision, after the changes it applied.
func (p *eventPrinter) follow(ctx context.Context, w *worker.Worker) {
	encoder := json.NewEncoder(p.out)
	printed := int64(0)
	for w.WaitFor(ctx, printed+1) == nil {
		rev := w.AppliedRev()
		t := float64(time.Now().UnixNano()) / 1e9
		p.mu.Lock()
		later := p.pending[:0]
		for _, e := range p.pending {
			if e.Rev > rev {
				later = append(later, e)
				continue
			}
			_ = encoder.Encode(map[string]any{"rev": e.Rev, "ns": e.NS, "key": e.Key, "op": e.Op, "t": t})
		}
		p.pending = later
		p.mu.Unlock()
		_ = encoder.Encode(map[string]any{"applied_rev": rev, "t": t})
		if err := p.out.Flush(); err != nil {
			return
		}
		printed = rev
	}
}
