package worker

import (
	"errors"
	"maps"
	"sync"
)

// ErrReplicaClosed means a write reached a replica after its Close.
var ErrReplicaClosed = errors.New("statesync: the replica is closed")

// MemoryReplica keeps the replica in memory: Store has BoltReplica's
// semantics (each Write applied atomically, in order) without durability, so a
// worker using it bootstraps from a snapshot every time its process starts.
// It is safe for concurrent use.
type MemoryReplica struct {
	mu      sync.Mutex
	closed  bool
	rev     int64
	entries map[KeyRef]Entry
	held    map[KeyRef]Held
}

// NewMemoryReplica returns an empty replica at revision 0.
func NewMemoryReplica() *MemoryReplica {
	return &MemoryReplica{entries: map[KeyRef]Entry{}, held: map[KeyRef]Held{}}
}

// Load returns what the replica holds as a new State, as OpenReplica reads a
// file back; it also works after Close.
func (m *MemoryReplica) Load() *State {
	m.mu.Lock()
	defer m.mu.Unlock()
	return NewState(m.rev, maps.Clone(m.entries), maps.Clone(m.held))
}

// Store applies writes in order; after Close it fails, storing nothing
// (no writes is no work, as for BoltReplica).
func (m *MemoryReplica) Store(writes []*Write) error {
	if len(writes) == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrReplicaClosed
	}
	for _, w := range writes {
		m.store(w)
	}
	return nil
}

func (m *MemoryReplica) store(w *Write) {
	if w.Replace {
		m.entries = make(map[KeyRef]Entry, len(w.Puts))
		m.held = map[KeyRef]Held{}
	}
	maps.Copy(m.entries, w.Puts)
	for _, ref := range w.Deletes {
		delete(m.entries, ref)
	}
	for _, ref := range w.Released {
		delete(m.held, ref)
	}
	maps.Copy(m.held, w.Holds)
	m.rev = w.Rev
}

// Close makes later writes fail; what was stored stays readable with Load.
func (m *MemoryReplica) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	return nil
}
