package worker

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/digest"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

// Snapshots, reconcile resyncs and repairs: the ways the controller replaces
// or corrects the replica rather than extending it.

// maxPresize bounds the entries map a resync's announced counts preallocate.
const maxPresize = 1 << 22

// pendingSnapshot is a bootstrap being received: its resync, the entries so
// far and their digests, counted chunk by chunk while the next is on the wire.
type pendingSnapshot struct {
	resync  *pb.Resync
	entries map[KeyRef]Entry
	counted map[string]*digest.Namespace
}

func (s *Session) resync(r *pb.Resync, out *Output) error {
	// A new resync supersedes a snapshot still being received, as in the reference worker.
	s.snapshot = nil
	if r.GetReconcile() {
		// Keep the replica, take rev as applied; descent repairs what differs.
		s.write(&Write{Rev: r.GetRev()}, out)
		s.ack(out)
		return nil
	}
	// Sized from the digests' counts: a map grown key by key rehashes all along.
	size := int64(0)
	for _, d := range r.GetDigests() {
		size += max(d.GetCount(), 0)
	}
	s.snapshot = &pendingSnapshot{resync: r, entries: make(map[KeyRef]Entry, min(size, maxPresize)),
		counted: map[string]*digest.Namespace{}}
	return nil
}

func (s *Session) chunk(c *pb.SnapshotChunk, out *Output) error {
	snap := s.snapshot
	if snap == nil {
		return protocolError("a snapshot chunk arrived without a resync")
	}
	if c.GetRev() != snap.resync.GetRev() {
		return &ReconnectError{Resync: true, Reason: fmt.Sprintf(
			"snapshot chunk at revision %d, the resync said %d", c.GetRev(), snap.resync.GetRev())}
	}
	for _, e := range c.GetEntries() {
		if s.subscribed[e.GetNs()] { // anything else is not ours to keep
			snap.add(KeyRef{e.GetNs(), e.GetKey()}, entryOf(e))
		}
	}
	if !c.GetLast() {
		return nil
	}
	s.snapshot = nil
	if err := snap.verify(); err != nil {
		return err
	}
	s.applySnapshot(snap, out)
	s.Resyncs++
	s.ack(out)
	return nil
}

func (snap *pendingSnapshot) add(ref KeyRef, e Entry) {
	d, ok := snap.counted[ref.NS]
	if !ok {
		d = digest.New()
		snap.counted[ref.NS] = d
	}
	d.Set(ref.Key, e.Leaf())
	snap.entries[ref] = e
}

// verify checks each namespace's digest over the received entries against
// the root the resync announced.
func (snap *pendingSnapshot) verify() error {
	for _, want := range snap.resync.GetDigests() {
		root := digest.EmptyRoot
		if d, ok := snap.counted[want.GetNs()]; ok {
			root = d.Root()
		}
		if !bytes.Equal(root[:], want.GetRoot()) {
			return &ReconnectError{Resync: true, Reason: fmt.Sprintf(
				"the snapshot of namespace %q does not match its digest", want.GetNs())}
		}
	}
	return nil
}

// applySnapshot replaces the replica: entries that changed are validated,
// keys that disappear are deletes; a refused one keeps its old value and is
// held at the snapshot's revision. Holds the snapshot releases stop being
// delta bases; a refused entry becomes one, like any refused change.
// The state adopts the snapshot's verified digests.
func (s *Session) applySnapshot(snap *pendingSnapshot, out *Output) {
	rev := snap.resync.GetRev()
	clear(s.refused)
	w := &Write{Rev: rev, Replace: true, Puts: make(map[KeyRef]Entry, len(snap.entries)), Holds: map[KeyRef]Held{},
		counted: snap.counted}
	refuse := func(ref KeyRef, reason string, counted []byte) {
		s.nack(rev, ref, reason, out)
		w.Holds[ref] = s.hold(ref, rev, reason, counted)
		if old, ok := s.state.Entries[ref]; ok {
			w.Puts[ref] = old
		}
	}
	for _, ref := range sortedRefs(snap.entries) {
		e := snap.entries[ref]
		if old, ok := s.state.Entries[ref]; ok && bytes.Equal(old.Value, e.Value) {
			if _, held := s.state.Held[ref]; !held {
				w.Puts[ref] = e
				continue
			}
		}
		event := Event{Rev: rev, NS: ref.NS, Key: ref.Key, Op: "put", Snapshot: true, SchemaVersion: e.SchemaVersion}
		reason := ""
		parsed, err := canonical.Parse(e.Value)
		if err != nil {
			reason = err.Error()
		} else {
			event.Value = parsed
			reason = s.validate(event)
		}
		if reason != "" {
			leaf := e.Leaf()
			refuse(ref, reason, leaf[:])
			s.refused[ref] = e
			continue
		}
		w.Puts[ref] = e
	}
	for _, ref := range sortedRefs(s.state.Entries) {
		if _, kept := snap.entries[ref]; kept || !s.subscribed[ref.NS] {
			continue
		}
		event := Event{Rev: rev, NS: ref.NS, Key: ref.Key, Op: "delete", Snapshot: true}
		if reason := s.handle(event); reason != "" {
			refuse(ref, reason, nil)
		}
	}
	s.write(w, out)
	s.forceSnapshot = false
}

func sortedRefs[V any](m map[KeyRef]V) []KeyRef {
	refs := make([]KeyRef, 0, len(m))
	for ref := range m {
		refs = append(refs, ref)
	}
	slices.SortFunc(refs, func(a, b KeyRef) int {
		if c := strings.Compare(a.NS, b.NS); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return refs
}

func entryOf(e *pb.Entry) Entry {
	return Entry{Value: e.GetValue(), CreateRev: e.GetCreateRev(), ModRev: e.GetModRev(), Version: e.GetVersion(),
		SchemaVersion: e.GetSchemaVersion(), SourceHash: e.GetSourceHash()}
}

func (s *Session) repair(r *pb.Repair, out *Output) {
	s.repaired = r.GetId() // applied or skipped: the next ACK's digest decides
	if r.GetRev() != s.state.Rev {
		return
	}
	w := &Write{Rev: r.GetRev(), Puts: map[KeyRef]Entry{}}
	for _, e := range r.GetEntries() {
		ref := KeyRef{e.GetNs(), e.GetKey()}
		entry := entryOf(e)
		event := Event{Rev: r.GetRev(), NS: ref.NS, Key: ref.Key, Op: "put", Snapshot: true, SchemaVersion: entry.SchemaVersion}
		event.Value, _ = canonical.Parse(entry.Value)
		s.handle(event) // a repair is applied as sent; the handler only hears of it
		w.Puts[ref] = entry
	}
	for _, d := range r.GetDeletes() {
		ref := KeyRef{d.GetNs(), d.GetKey()}
		s.handle(Event{Rev: r.GetRev(), NS: ref.NS, Key: ref.Key, Op: "delete", Snapshot: true})
		w.Deletes = append(w.Deletes, ref)
	}
	for ref := range w.touched() {
		if _, held := s.state.Held[ref]; held {
			w.Released = append(w.Released, ref)
		}
		delete(s.refused, ref)
	}
	s.write(w, out)
}
