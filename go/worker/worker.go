package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/client"
	"github.com/statesync/statesync/go/schema"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

// Config describes a worker.
type Config struct {
	Target     string   // the controller, host:port
	ID         string   // the worker id, stable across restarts
	Namespaces []string // what to replicate
	// Dir is the state directory, where the bbolt replica file lives; empty
	// keeps the replica in memory (MemoryReplica), so every start bootstraps
	// from a snapshot.
	Dir    string
	Deltas bool // ask for JSON Patch deltas where smaller
	// Heartbeat is how often the worker sends when idle (default 1 s);
	// StaleAfter how long a silent controller is tolerated (default 5 s).
	Heartbeat  time.Duration
	StaleAfter time.Duration
	// Schemas are JSON Schema documents (parsed, package canonical's types)
	// that put values must satisfy, per namespace.
	Schemas map[string]any
	// Versions are the schema versions the worker understands, per
	// namespace: values arrive translated into the newest registered one and
	// are validated against its registered schema.
	Versions map[string][]int32
	Handler  Handler
	// DialOptions go after the defaults (a plaintext transport, connection
	// backoff following the reconnect delays), so they may replace them (TLS...).
	DialOptions []grpc.DialOption
	Logger      *slog.Logger
}

// Worker keeps a replica in step with a controller. Read it from any
// goroutine; Run drives it.
type Worker struct {
	cfg     Config
	log     *slog.Logger
	replica Replica

	mu      sync.RWMutex
	session *Session
	// durableRev is the revision the replica on disk is at: the session's
	// state runs ahead of it between a Receive and the Store that follows.
	durableRev int64
	applied    *sync.Cond // broadcast when durableRev advances
	connected  bool
	lastErr    error
}

// Open opens the worker's replica: in cfg.Dir, or in memory when it is empty.
// A corrupt replica is moved aside (the worker then bootstraps from a
// snapshot); one in use by another process is ErrReplicaInUse.
func Open(cfg Config) (*Worker, error) {
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	schemas := map[string]*schema.Schema{}
	for ns, doc := range cfg.Schemas {
		s, err := schema.Compile(doc)
		if err != nil {
			return nil, fmt.Errorf("statesync: schema of namespace %q: %w", ns, err)
		}
		schemas[ns] = s
	}
	replica, state, err := openReplica(cfg.Dir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	w := &Worker{cfg: cfg, log: cfg.Logger.With("worker", cfg.ID), replica: replica, durableRev: state.Rev}
	w.applied = sync.NewCond(w.mu.RLocker())
	w.session = NewSession(SessionConfig{
		WorkerID: cfg.ID, Namespaces: cfg.Namespaces, Deltas: cfg.Deltas,
		Heartbeat: cfg.Heartbeat, StaleAfter: cfg.StaleAfter, Schemas: schemas, Versions: cfg.Versions,
		Handler: w.unlocked(cfg.Handler),
	}, state)
	return w, nil
}

// openReplica opens the bbolt replica in dir, moving a corrupt one aside, or
// a MemoryReplica when dir is empty.
func openReplica(dir string, logger *slog.Logger) (Replica, *State, error) {
	if dir == "" {
		replica := NewMemoryReplica()
		return replica, replica.Load(), nil
	}
	replica, state, err := OpenReplica(dir)
	if errors.Is(err, ErrReplicaCorrupt) {
		aside := filepath.Join(dir, fmt.Sprintf("%s.corrupt-%d", ReplicaFile, time.Now().UnixNano()))
		logger.Warn("replica is corrupt; moving it aside and resyncing", "error", err, "moved_to", aside)
		if rerr := os.Rename(filepath.Join(dir, ReplicaFile), aside); rerr != nil {
			return nil, nil, errors.Join(err, rerr)
		}
		replica, state, err = OpenReplica(dir)
	}
	if err != nil {
		return nil, nil, err
	}
	return replica, state, nil
}

// unlocked runs the user's handler without the worker's lock, so it may read
// the worker (Get, AppliedRev...). The session calls handlers only between
// writes, when the state is whole, and only the Run goroutine writes.
func (w *Worker) unlocked(h Handler) Handler {
	if h == nil {
		return nil
	}
	return func(e Event) error {
		w.mu.Unlock()
		defer w.mu.Lock()
		return h(e)
	}
}

// Close closes the replica. Call it after Run returned.
func (w *Worker) Close() error { return w.replica.Close() }

// AppliedRev is the revision the replica has applied and stored (made
// durable, with a state directory).
func (w *Worker) AppliedRev() int64 {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.durableRev
}

// Resyncs counts the snapshots this process applied.
func (w *Worker) Resyncs() int {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.session.Resyncs
}

// Get returns key's value in the replica (package canonical's types). It
// reads the applied state, which may be one write ahead of AppliedRev while
// that write is being made durable.
func (w *Worker) Get(ns, key string) (any, bool) {
	w.mu.RLock()
	e, ok := w.session.State().Entries[KeyRef{ns, key}]
	w.mu.RUnlock()
	if !ok {
		return nil, false
	}
	v, err := canonical.Parse(e.Value)
	return v, err == nil
}

// Root returns ns's digest root and count over the authoritative view.
func (w *Worker) Root(ns string) ([32]byte, uint64) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	d := w.session.State().Digest(ns)
	return d.Root(), d.Count()
}

// Run syncs until ctx ends, reconnecting after a delay that grows with the
// outage (docs/wire.md, "Reconnects"). It returns ctx's error, or a replica
// write failure (the replica on disk is then the truth: reopen the worker).
func (w *Worker) Run(ctx context.Context) error {
	// grpc-go's own connection backoff (1 s, growing to 2 min) would hold a
	// stream back long after the controller is up again: it follows ours.
	dial := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  backoffBase,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   backoffCap,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
	dial = append(dial, w.cfg.DialOptions...)
	conn, err := grpc.NewClient(w.cfg.Target, dial...)
	if err != nil {
		return fmt.Errorf("statesync: dialing %s: %w", w.cfg.Target, err)
	}
	defer conn.Close()
	rpc := pb.NewStatesyncClient(conn)
	outageSince := time.Now()
	for {
		established, err := w.stream(ctx, rpc)
		var storeErr *storeError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &storeErr):
			return err
		case err != nil:
			w.log.Warn("sync stream ended; reconnecting", "error", err)
			w.mu.Lock()
			w.lastErr = err
			w.mu.Unlock()
		}
		if established {
			outageSince = time.Now()
		}
		delay := reconnectDelay(time.Since(outageSince), rand.Float64())
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
	}
}

const (
	backoffBase = 50 * time.Millisecond
	backoffCap  = time.Second
)

// reconnectDelay is uniform in [½, 1] × min(cap, max(base, outage / 4)),
// given unit uniform in [0, 1): back within about a quarter of the outage
// after the controller is, spread at random.
func reconnectDelay(outage time.Duration, unit float64) time.Duration {
	bound := min(backoffCap, max(backoffBase, outage/4))
	return time.Duration((0.5 + unit/2) * float64(bound))
}

type storeError struct{ err error }

func (e *storeError) Error() string { return "statesync: writing the replica: " + e.err.Error() }
func (e *storeError) Unwrap() error { return e.err }

// stream runs one Sync stream; it reports whether the controller answered.
func (w *Worker) stream(ctx context.Context, rpc pb.StatesyncClient) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := w.refreshContracts(ctx, rpc, nil, true); err != nil {
		return false, err
	}
	stream, err := rpc.Sync(ctx)
	if err != nil {
		return false, client.FromGRPC(err, nil)
	}
	w.mu.Lock()
	hello := w.session.Hello(time.Now())
	w.mu.Unlock()
	if err := stream.Send(hello); err != nil {
		return false, client.FromGRPC(err, nil)
	}
	replies := make(chan *pb.SyncReply)
	failed := make(chan error, 1)
	go func() {
		for {
			reply, err := stream.Recv()
			if err != nil {
				failed <- err
				return
			}
			select {
			case replies <- reply:
			case <-ctx.Done():
				return
			}
		}
	}()
	ticker := time.NewTicker(w.cfg.Heartbeat / 4)
	defer ticker.Stop()
	established := false
	defer func() { w.setConnected(false) }()
	for {
		var out Output
		var serr error
		select {
		case <-ctx.Done():
			return established, ctx.Err()
		case err := <-failed:
			return established, client.FromGRPC(err, stream.Trailer())
		case reply := <-replies:
			if !established {
				established = true
				w.setConnected(true)
				w.log.Info("connected", "target", w.cfg.Target, "rev", w.AppliedRev())
			}
			if err := w.refreshContracts(ctx, rpc, reply, false); err != nil {
				return established, err
			}
			w.mu.Lock()
			resyncs := w.session.Resyncs
			out, serr = w.session.Receive(reply, time.Now())
			snapshotted := w.session.Resyncs > resyncs
			rev := w.session.State().Rev
			w.mu.Unlock()
			if snapshotted {
				w.log.Info("replica replaced by a snapshot", "rev", rev)
			}
		case now := <-ticker.C:
			w.mu.Lock()
			out, serr = w.session.Tick(now)
			w.mu.Unlock()
		}
		// Durable first: no ACK leaves before the data it covers is on disk.
		if err := w.replica.Store(out.Writes); err != nil {
			return established, &storeError{err}
		}
		if len(out.Writes) > 0 {
			w.mu.Lock()
			w.durableRev = out.Writes[len(out.Writes)-1].Rev
			w.mu.Unlock()
			w.applied.Broadcast()
		}
		for _, m := range out.Send {
			if err := stream.Send(m); err != nil {
				return established, client.FromGRPC(err, nil)
			}
		}
		if serr != nil {
			return established, serr
		}
	}
}

func (w *Worker) setConnected(c bool) {
	w.mu.Lock()
	w.connected = c
	w.mu.Unlock()
}

// Connected reports whether a stream is established.
func (w *Worker) Connected() bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.connected
}

// LastError is why the last stream ended (nil before any ended): a
// *client.Error from the controller (errors.Is(err, client.ErrNoTranslationPath)...),
// or a *ReconnectError the worker decided on.
func (w *Worker) LastError() error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	return w.lastErr
}

// WaitFor blocks until the replica has applied and stored rev (made it
// durable, with a state directory), or ctx ends.
func (w *Worker) WaitFor(ctx context.Context, rev int64) error {
	stop := context.AfterFunc(ctx, func() {
		// Taking the lock first means the waiter is inside Wait, so the wake-up is not lost.
		w.mu.Lock()
		w.mu.Unlock()
		w.applied.Broadcast()
	})
	defer stop()
	w.mu.RLock()
	defer w.mu.RUnlock()
	for w.durableRev < rev {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		w.applied.Wait()
	}
	return nil
}
