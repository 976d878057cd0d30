package worker

import (
	"crypto/sha256"

	"github.com/statesync/statesync/go/digest"
)

// KeyRef names one key of one namespace.
type KeyRef struct {
	NS  string
	Key string
}

// Entry is one key's value in the replica.
type Entry struct {
	Value         []byte // canonical JSON
	CreateRev     int64
	ModRev        int64
	Version       int64
	SchemaVersion int32
	SourceHash    []byte // the stored value's hash when Value is a translation
}

// ValueHash is SHA-256 of the value.
func (e Entry) ValueHash() digest.Hash { return sha256.Sum256(e.Value) }

// Leaf is the hash the digest counts: SourceHash when set, else ValueHash.
func (e Entry) Leaf() digest.Hash {
	if len(e.SourceHash) == 32 {
		return digest.Hash(e.SourceHash)
	}
	return e.ValueHash()
}

// Held is a key held back after the worker refused a change to it
// (docs/wire.md, "Held keys").
type Held struct {
	Rev    int64
	Reason string
	// HeldHash is the hash of the value kept (nil: the key is absent).
	HeldHash []byte
	// Counted is the hash the digest counts for the key: the refused
	// change's source_hash or value_hash; nil for a refused delete.
	Counted []byte
}

// State is the replica as the session sees it: the applied revision, every
// entry, the held keys and each namespace's digest over the authoritative
// view (a held key counts with the controller's hash).
type State struct {
	Rev     int64
	Entries map[KeyRef]Entry
	Held    map[KeyRef]Held
	digests map[string]*digest.Namespace
}

// NewState returns a state at rev holding entries and holds (e.g. read back
// from a persisted replica); it computes the digests.
func NewState(rev int64, entries map[KeyRef]Entry, held map[KeyRef]Held) *State {
	s := &State{Rev: rev, Entries: entries, Held: held, digests: map[string]*digest.Namespace{}}
	if s.Entries == nil {
		s.Entries = map[KeyRef]Entry{}
	}
	if s.Held == nil {
		s.Held = map[KeyRef]Held{}
	}
	for ref := range s.Entries {
		s.recount(ref)
	}
	for ref := range s.Held {
		s.recount(ref)
	}
	return s
}

// Digest returns ns's digest (empty when the replica has nothing there).
// It does not change the state: readers may call it concurrently.
func (s *State) Digest(ns string) *digest.Namespace {
	if d, ok := s.digests[ns]; ok {
		return d
	}
	return digest.New()
}

// recount sets ref's digest leaf from its hold or its entry.
func (s *State) recount(ref KeyRef) {
	d, ok := s.digests[ref.NS]
	if !ok {
		d = digest.New()
		s.digests[ref.NS] = d
	}
	if h, held := s.Held[ref]; held {
		if len(h.Counted) == 32 {
			d.Set(ref.Key, digest.Hash(h.Counted))
		} else {
			d.Delete(ref.Key)
		}
		return
	}
	if e, ok := s.Entries[ref]; ok {
		d.Set(ref.Key, e.Leaf())
	} else {
		d.Delete(ref.Key)
	}
}

// apply performs a write on the in-memory state.
func (s *State) apply(w *Write) {
	if w.Replace {
		s.Entries = make(map[KeyRef]Entry, len(w.Puts))
		s.Held = map[KeyRef]Held{}
		s.digests = map[string]*digest.Namespace{}
	}
	for ref, e := range w.Puts {
		s.Entries[ref] = e
	}
	for _, ref := range w.Deletes {
		delete(s.Entries, ref)
	}
	for _, ref := range w.Released {
		delete(s.Held, ref)
	}
	for ref, h := range w.Holds {
		s.Held[ref] = h
	}
	if w.counted != nil {
		// The snapshot's digests count every put as received; only held keys
		// count otherwise.
		s.digests = w.counted
		for ref := range w.Holds {
			s.recount(ref)
		}
	} else {
		for ref := range w.touched() {
			s.recount(ref)
		}
	}
	s.Rev = w.Rev
}

// Write is one atomic change of the replica: what a revision, a snapshot, a
// repair or a progress notice does. A persisted replica stores it in one
// durable transaction before the ACK that follows it is sent.
type Write struct {
	Rev      int64 // the applied revision after the write
	Replace  bool  // a snapshot: everything not in Puts and Holds is dropped
	Puts     map[KeyRef]Entry
	Deletes  []KeyRef
	Holds    map[KeyRef]Held
	Released []KeyRef
	// counted are a snapshot's digests over its entries as received, which
	// apply adopts rather than recounting every key (Replace only).
	counted map[string]*digest.Namespace
}

func (w *Write) touched() map[KeyRef]bool {
	out := map[KeyRef]bool{}
	for ref := range w.Puts {
		out[ref] = true
	}
	for _, ref := range w.Deletes {
		out[ref] = true
	}
	for ref := range w.Holds {
		out[ref] = true
	}
	for _, ref := range w.Released {
		out[ref] = true
	}
	return out
}
