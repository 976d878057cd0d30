// Package worker makes a Go program a statesync worker: it keeps a persisted
// replica of chosen namespaces exactly in step with a controller over the
// Sync stream (docs/wire.md is normative).
//
// The protocol lives in Session, which does no I/O: controller messages and
// clock ticks go in; replies to send, replica writes to make durable and
// reconnect decisions come out. Worker is the thin loop around it (gRPC,
// bbolt, timers, backoff).
package worker

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/patch"
	"github.com/statesync/statesync/go/schema"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

// Event is one change the worker is about to apply, given to the handler.
type Event struct {
	Rev       int64
	NS        string
	Key       string
	Op        string // "put" or "delete"
	Value     any    // the parsed value of a put (package canonical's types)
	CommandID string
	Trace     string
	// Snapshot is set for changes a snapshot or a repair makes (no command
	// behind them).
	Snapshot bool
	// SchemaVersion is the version Value is in, for a namespace served in a
	// declared version (0: as stored).
	SchemaVersion int32
}

// Handler sees each change before it is applied. An error refuses the
// change: the worker NACKs it with the error's text and keeps the key's last
// good value. Changes made by a repair cannot be refused; the error is ignored.
type Handler func(Event) error

// SessionConfig is what the protocol needs to know about the worker.
type SessionConfig struct {
	WorkerID   string
	Namespaces []string
	Deltas     bool          // ask for JSON Patch deltas
	Heartbeat  time.Duration // how often to send when there is nothing else
	StaleAfter time.Duration // silence after which the stream is stale
	// Schemas validates put values per namespace at apply time (NACK on a
	// violation), whatever version they are in.
	Schemas map[string]*schema.Schema
	// Versions are the schema versions the worker understands, per
	// namespace; the controller serves each namespace in the newest of them
	// that is registered (docs/contracts.md §3). None: values as stored.
	Versions map[string][]int32
	Handler  Handler
}

// ReconnectError ends a stream: the worker reconnects, from its applied
// revision, or from 0 (a requested resync) when Resync is set.
type ReconnectError struct {
	Reason string
	Resync bool
}

func (e *ReconnectError) Error() string { return e.Reason }

func reconnect(format string, args ...any) error {
	return &ReconnectError{Reason: fmt.Sprintf(format, args...)}
}

func protocolError(format string, args ...any) error {
	return &ReconnectError{Reason: "protocol error: " + fmt.Sprintf(format, args...)}
}

// Output is what the loop must do after an input, in this order: make the
// writes durable, then send the messages (an ACK never precedes its data).
type Output struct {
	Writes []*Write
	Send   []*pb.SyncRequest
}

// Session is one worker's end of the sync protocol, across streams.
type Session struct {
	cfg           SessionConfig
	state         *State
	subscribed    map[string]bool
	snapshot      *pendingSnapshot
	refused       map[KeyRef]Entry // refused puts, the base of a delta sent before our NACK
	repaired      uint64
	forceSnapshot bool
	lastHeard     time.Time
	lastSent      time.Time
	// contract holds the registered schemas of declared namespaces, per version.
	contract map[string]map[int32]*schema.Schema
	// Resyncs counts snapshots applied.
	Resyncs int
}

// NewSession starts the protocol over a replica's state. It sorts and
// deduplicates cfg.Namespaces: Hello.namespaces and Ack.digests list them in
// that order, as every statesync worker does.
func NewSession(cfg SessionConfig, state *State) *Session {
	cfg.Namespaces = slices.Compact(slices.Sorted(slices.Values(cfg.Namespaces)))
	sub := map[string]bool{}
	for _, ns := range cfg.Namespaces {
		sub[ns] = true
	}
	return &Session{cfg: cfg, state: state, subscribed: sub, refused: map[KeyRef]Entry{},
		contract: map[string]map[int32]*schema.Schema{}}
}

// SetContractSchemas gives the session the registered schemas of a declared
// namespace, per version, to validate served values with.
func (s *Session) SetContractSchemas(ns string, byVersion map[int32]*schema.Schema) {
	s.contract[ns] = byVersion
}

// ContractSchema reports whether the session has the registered schema of
// ns at version (a loop fetches the contract when it does not).
func (s *Session) ContractSchema(ns string, version int32) bool {
	_, ok := s.contract[ns][version]
	return ok
}

// replicaVersion is the version ns's values are in: -1 with no values, 0
// for values as stored.
func (s *Session) replicaVersion(ns string) int32 {
	for ref, e := range s.state.Entries {
		if ref.NS == ns {
			return e.SchemaVersion
		}
	}
	return -1
}

// State is the replica state the session maintains.
func (s *Session) State() *State { return s.state }

// Hello opens a stream: it returns the first message and forgets any
// snapshot the previous stream left unfinished.
func (s *Session) Hello(now time.Time) *pb.SyncRequest {
	s.snapshot = nil
	s.lastHeard, s.lastSent = now, now
	from := s.state.Rev
	if s.forceSnapshot {
		from = 0
	}
	return &pb.SyncRequest{Msg: &pb.SyncRequest_Hello{Hello: &pb.Hello{
		WorkerId:   s.cfg.WorkerID,
		Namespaces: s.cfg.Namespaces,
		FromRev:    from,
		Deltas:     s.cfg.Deltas,
		HeartbeatS: s.cfg.Heartbeat.Seconds(),
		Held:       s.heldKeys(),
		Versions:   s.declared(),
	}}}
}

// Tick is called periodically with the current time: it sends a heartbeat
// when nothing was sent for a heartbeat interval, and ends a stream the
// controller has been silent on for StaleAfter.
func (s *Session) Tick(now time.Time) (Output, error) {
	var out Output
	if s.cfg.StaleAfter > 0 && now.Sub(s.lastHeard) >= s.cfg.StaleAfter {
		return out, reconnect("stale: nothing from the controller for %.1f s", now.Sub(s.lastHeard).Seconds())
	}
	if now.Sub(s.lastSent) >= s.cfg.Heartbeat {
		out.Send = append(out.Send, &pb.SyncRequest{Msg: &pb.SyncRequest_Heartbeat{
			Heartbeat: &pb.Heartbeat{SentUnix: float64(now.UnixNano()) / 1e9},
		}})
		s.lastSent = now
	}
	return out, nil
}

// Receive handles one controller message. Writes in the output are already
// applied to State and must be made durable before anything is sent; they
// are valid even when an error (a reconnect) is returned with them.
func (s *Session) Receive(reply *pb.SyncReply, now time.Time) (Output, error) {
	s.lastHeard = now
	var out Output
	var err error
	switch m := reply.GetMsg().(type) {
	case *pb.SyncReply_Batch:
		err = s.batch(m.Batch, &out)
	case *pb.SyncReply_Progress:
		if s.snapshot == nil {
			s.advance(m.Progress.GetRev(), &out)
			s.ack(&out)
		}
	case *pb.SyncReply_Resync:
		err = s.resync(m.Resync, &out)
	case *pb.SyncReply_Chunk:
		err = s.chunk(m.Chunk, &out)
	case *pb.SyncReply_Query:
		err = s.answer(m.Query, &out)
	case *pb.SyncReply_Repair:
		s.repair(m.Repair, &out)
		s.ack(&out)
	default:
		// A heartbeat, or a kind this worker does not know: a sign of life.
	}
	if len(out.Send) > 0 {
		s.lastSent = now
	}
	var rc *ReconnectError
	if errors.As(err, &rc) && rc.Resync {
		s.forceSnapshot = true
	}
	return out, err
}

func (s *Session) batch(b *pb.ChangeBatch, out *Output) error {
	if s.snapshot != nil {
		return protocolError("a change batch arrived in the middle of a snapshot")
	}
	applied := s.state.Rev
	switch {
	case b.GetRev() < b.GetPrevRev():
		return protocolError("batch (%d, %d] ends before it starts", b.GetPrevRev(), b.GetRev())
	case b.GetRev() <= applied: // a replay
		s.ack(out)
		return nil
	case b.GetPrevRev() > applied:
		return reconnect("gap: the batch follows revision %d, revision %d is the last applied", b.GetPrevRev(), applied)
	}
	for _, revision := range b.GetRevisions() {
		if revision.GetRev() > b.GetRev() {
			return protocolError("revision %d in batch (%d, %d]", revision.GetRev(), b.GetPrevRev(), b.GetRev())
		}
		if revision.GetRev() <= s.state.Rev {
			continue
		}
		if err := s.applyRevision(revision, out); err != nil {
			return err
		}
	}
	s.advance(b.GetRev(), out)
	s.ack(out)
	return nil
}

func (s *Session) applyRevision(r *pb.Revision, out *Output) error {
	w := &Write{Rev: r.GetRev(), Puts: map[KeyRef]Entry{}, Holds: map[KeyRef]Held{}}
	var nacks Output // sent only if the revision applies
	for _, c := range r.GetChanges() {
		if !s.subscribed[c.GetNs()] {
			continue // not ours to keep
		}
		ref := KeyRef{c.GetNs(), c.GetKey()}
		entry, reason, err := s.check(r, c)
		if err != nil {
			return err // a drifted delta base: nothing of this revision applies
		}
		if reason != "" {
			s.nack(r.GetRev(), ref, reason, &nacks)
			counted := c.GetSourceHash()
			if len(counted) == 0 {
				counted = c.GetValueHash()
			}
			if c.GetKind() == pb.Change_DELETE {
				counted = nil
			}
			w.Holds[ref] = s.hold(ref, r.GetRev(), reason, counted)
			if entry != nil {
				s.refused[ref] = *entry
			}
			continue
		}
		delete(s.refused, ref)
		if _, held := s.state.Held[ref]; held {
			w.Released = append(w.Released, ref)
		}
		if c.GetKind() == pb.Change_DELETE {
			w.Deletes = append(w.Deletes, ref)
		} else {
			w.Puts[ref] = *entry
		}
	}
	out.Send = append(out.Send, nacks.Send...)
	s.write(w, out)
	return nil
}

// check decodes one change. It returns the entry a put would store, and a
// non-empty reason when the worker refuses the change; an error means the
// replica drifted (a delta without its base) and must resync.
func (s *Session) check(r *pb.Revision, c *pb.Change) (*Entry, string, error) {
	event := Event{Rev: r.GetRev(), NS: c.GetNs(), Key: c.GetKey(), Op: "delete", CommandID: r.GetCommandId(), Trace: r.GetTrace()}
	if c.GetKind() == pb.Change_DELETE {
		return nil, s.handle(event), nil
	}
	value := c.GetValue()
	if len(c.GetPatch()) > 0 {
		var err error
		if value, err = s.resolveDelta(c); err != nil {
			return nil, "", err
		}
	}
	entry := &Entry{Value: value, CreateRev: c.GetCreateRev(), ModRev: r.GetRev(), Version: c.GetVersion(),
		SchemaVersion: c.GetSchemaVersion(), SourceHash: c.GetSourceHash()}
	if sum := sha256.Sum256(value); !bytes.Equal(sum[:], c.GetValueHash()) {
		return entry, "the value does not match its hash", nil
	}
	parsed, err := canonical.Parse(value)
	if err != nil {
		return entry, err.Error(), nil
	}
	event.Op, event.Value, event.SchemaVersion = "put", parsed, c.GetSchemaVersion()
	return entry, s.validate(event), nil
}

// validate runs the local schema, the registered schema of the version the
// value was served in, and the handler on a put.
func (s *Session) validate(e Event) string {
	if reason := violations(s.cfg.Schemas[e.NS], e.Value, "the local schema"); reason != "" {
		return reason
	}
	if byVersion := s.contract[e.NS]; len(byVersion) > 0 {
		version := e.SchemaVersion
		if version == 0 { // the namespace has no registered schema yet: the newest we run
			version = slices.Max(slices.Collect(maps.Keys(byVersion)))
		}
		sch, ok := byVersion[version]
		if !ok {
			return fmt.Sprintf("served in schema v%d, which this worker has no schema for", version)
		}
		if reason := violations(sch, e.Value, fmt.Sprintf("schema v%d", version)); reason != "" {
			return reason
		}
	}
	return s.handle(e)
}

func violations(sch *schema.Schema, value any, which string) string {
	if sch == nil {
		return ""
	}
	found := sch.Validate(value)
	if len(found) == 0 {
		return ""
	}
	parts := make([]string, len(found))
	for i, v := range found {
		parts[i] = fmt.Sprintf("%s: %s", cmp.Or(v.Path, "(root)"), v.Message)
	}
	return "does not conform to " + which + ": " + strings.Join(parts, "; ")
}

func (s *Session) handle(e Event) string {
	if s.cfg.Handler == nil {
		return ""
	}
	if err := s.cfg.Handler(e); err != nil {
		if msg := err.Error(); msg != "" {
			return msg
		}
		return "refused by the handler"
	}
	return ""
}

func (s *Session) resolveDelta(c *pb.Change) ([]byte, error) {
	ref := KeyRef{c.GetNs(), c.GetKey()}
	base, ok := s.state.Entries[ref]
	if refused, was := s.refused[ref]; was && refused.ModRev == c.GetPrevModRev() {
		base, ok = refused, true
	}
	if !ok || base.ModRev != c.GetPrevModRev() {
		have := "no value"
		if ok {
			have = fmt.Sprintf("mod_rev %d", base.ModRev)
		}
		return nil, &ReconnectError{Resync: true, Reason: fmt.Sprintf(
			"delta for %s/%s is based on mod_rev %d, the replica has %s", ref.NS, ref.Key, c.GetPrevModRev(), have)}
	}
	result, err := patch.ApplyJSON(base.Value, c.GetPatch())
	if err == nil {
		if sum := sha256.Sum256(result); !bytes.Equal(sum[:], c.GetValueHash()) {
			err = errors.New("the result does not match value_hash")
		}
	}
	if err != nil {
		return nil, &ReconnectError{Resync: true, Reason: fmt.Sprintf("delta for %s/%s: %v", ref.NS, ref.Key, err)}
	}
	return result, nil
}

func (s *Session) hold(ref KeyRef, rev int64, reason string, counted []byte) Held {
	h := Held{Rev: rev, Reason: reason, Counted: slices.Clone(counted)}
	if e, ok := s.state.Entries[ref]; ok {
		sum := e.ValueHash()
		h.HeldHash = sum[:]
	}
	return h
}

func (s *Session) nack(rev int64, ref KeyRef, reason string, out *Output) {
	out.Send = append(out.Send, &pb.SyncRequest{Msg: &pb.SyncRequest_Nack{Nack: &pb.Nack{
		Rev: rev, Ns: ref.NS, Key: ref.Key, Reason: reason,
	}}})
}

func (s *Session) write(w *Write, out *Output) {
	s.state.apply(w)
	out.Writes = append(out.Writes, w)
}

func (s *Session) advance(rev int64, out *Output) {
	if rev > s.state.Rev {
		s.write(&Write{Rev: rev}, out)
	}
}

func (s *Session) answer(q *pb.DigestQuery, out *Output) error {
	d := s.state.Digest(q.GetNs())
	answer := &pb.DigestAnswer{Id: q.GetId(), Ns: q.GetNs(), Rev: s.state.Rev}
	for _, prefix := range q.GetPrefixes() {
		a, err := d.Answer(prefix)
		if err != nil {
			return protocolError("digest query %d: %v", q.GetId(), err)
		}
		answer.Nodes = append(answer.Nodes, &pb.NodeAnswer{
			Prefix: a.Prefix, Children: a.Children, Leaves: a.Leaves, IsLeaves: a.IsLeaves,
		})
	}
	for _, nq := range q.GetNames() {
		names, err := d.Names(nq.GetPrefix(), nq.GetLeaves())
		if err != nil {
			return protocolError("digest query %d: %v", q.GetId(), err)
		}
		answer.Names = append(answer.Names, names...)
	}
	out.Send = append(out.Send, &pb.SyncRequest{Msg: &pb.SyncRequest_Answer{Answer: answer}})
	return nil
}

func (s *Session) declared() []*pb.SchemaVersions {
	var out []*pb.SchemaVersions
	for _, ns := range s.cfg.Namespaces {
		if versions, ok := s.cfg.Versions[ns]; ok {
			out = append(out, &pb.SchemaVersions{Ns: ns, Versions: versions, ReplicaVersion: s.replicaVersion(ns)})
		}
	}
	return out
}

func (s *Session) heldKeys() []*pb.HeldKey {
	var out []*pb.HeldKey
	for _, ref := range sortedRefs(s.state.Held) {
		h := s.state.Held[ref]
		out = append(out, &pb.HeldKey{Ns: ref.NS, Key: ref.Key, Rev: h.Rev, Reason: h.Reason, HeldHash: h.HeldHash})
	}
	return out
}

func (s *Session) ack(out *Output) {
	ack := &pb.Ack{Rev: s.state.Rev, Held: s.heldKeys(), Repaired: s.repaired}
	for _, ns := range s.cfg.Namespaces {
		d := s.state.Digest(ns)
		root := d.Root()
		ack.Digests = append(ack.Digests, &pb.NamespaceDigest{Ns: ns, Root: root[:], Count: int64(d.Count())})
	}
	out.Send = append(out.Send, &pb.SyncRequest{Msg: &pb.SyncRequest_Ack{Ack: ack}})
}
