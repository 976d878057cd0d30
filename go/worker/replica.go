package worker

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"google.golang.org/protobuf/proto"

	pb "github.com/statesync/statesync/go/statesyncv1"
)

// ReplicaFile is the bbolt file in a worker's state directory.
const ReplicaFile = "replica.bolt"

const formatVersion = 1

// initialMmapSize is the bbolt mapping reserved up front, enough for a
// replica of about a million small entries before the first remap.
const initialMmapSize = 256 << 20

var (
	bucketMeta    = []byte("meta")
	bucketEntries = []byte("entries")
	bucketHeld    = []byte("held")
	keyRev        = []byte("rev")
	keyFormat     = []byte("format")
)

// ErrReplicaInUse means another process holds the state directory.
var ErrReplicaInUse = errors.New("statesync: the state directory is in use by another worker process")

// ErrReplicaCorrupt means the state directory failed its checks.
var ErrReplicaCorrupt = errors.New("statesync: the replica is corrupt")

// Replica stores what the session applies: each Write atomically and in
// order, before the ACK that follows it is sent. BoltReplica keeps it in a
// file, durable; MemoryReplica in memory, lost with the process.
type Replica interface {
	// Store applies writes in order, all or none.
	Store(writes []*Write) error
	// Close releases the replica; a Store after it fails.
	Close() error
}

// BoltReplica is the worker's persisted state: entries, held keys and the
// applied revision in one bbolt file. Every Write is one transaction, fsync'd
// before Store returns, so a crash never applies a revision twice nor skips one.
type BoltReplica struct {
	db   *bolt.DB
	path string
}

// OpenReplica opens (creating) the bbolt replica in dir and reads its state back.
func OpenReplica(dir string) (*BoltReplica, *State, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("statesync: creating the state directory: %w", err)
	}
	path := filepath.Join(dir, ReplicaFile)
	options := &bolt.Options{Timeout: 200 * time.Millisecond}
	if runtime.GOOS != "windows" { // there bbolt would size the file to the mapping
		// Address space only: a write that outgrows the mapping remaps it and
		// copies every node it touched to the heap first (a snapshot's many).
		options.InitialMmapSize = initialMmapSize
	}
	db, err := bolt.Open(path, 0o600, options)
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, nil, fmt.Errorf("%w: %s", ErrReplicaInUse, dir)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrReplicaCorrupt, path, err)
	}
	r := &BoltReplica{db: db, path: path}
	state, err := r.load()
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return r, state, nil
}

// Close closes the file.
func (r *BoltReplica) Close() error { return r.db.Close() }

func (r *BoltReplica) load() (*State, error) {
	var rev int64
	entries := map[KeyRef]Entry{}
	held := map[KeyRef]Held{}
	err := r.db.Update(func(tx *bolt.Tx) error {
		meta, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		if v := meta.Get(keyFormat); v == nil {
			if err := meta.Put(keyFormat, u64(formatVersion)); err != nil {
				return err
			}
		} else if len(v) != 8 || binary.BigEndian.Uint64(v) != formatVersion {
			return fmt.Errorf("unknown replica format %x", v)
		}
		if v := meta.Get(keyRev); v != nil {
			if len(v) != 8 {
				return fmt.Errorf("applied revision is %d bytes", len(v))
			}
			rev = int64(binary.BigEndian.Uint64(v))
		}
		eb, err := tx.CreateBucketIfNotExists(bucketEntries)
		if err != nil {
			return err
		}
		if err := eb.ForEach(func(k, v []byte) error {
			ref, err := refOf(k)
			if err != nil {
				return err
			}
			var e pb.Entry
			if err := proto.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("entry %s/%s: %w", ref.NS, ref.Key, err)
			}
			entries[ref] = entryOf(&e)
			return nil
		}); err != nil {
			return err
		}
		hb, err := tx.CreateBucketIfNotExists(bucketHeld)
		if err != nil {
			return err
		}
		return hb.ForEach(func(k, v []byte) error {
			ref, err := refOf(k)
			if err != nil {
				return err
			}
			var h Held
			if err := json.Unmarshal(v, &h); err != nil {
				return fmt.Errorf("held key %s/%s: %w", ref.NS, ref.Key, err)
			}
			held[ref] = h
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrReplicaCorrupt, r.path, err)
	}
	return NewState(rev, entries, held), nil
}

// Store makes writes durable in one transaction (in order); bbolt fsyncs
// the file before the commit returns.
func (r *BoltReplica) Store(writes []*Write) error {
	if len(writes) == 0 {
		return nil
	}
	return r.db.Update(func(tx *bolt.Tx) error {
		for _, w := range writes {
			if err := store(tx, w); err != nil {
				return err
			}
		}
		return nil
	})
}

func store(tx *bolt.Tx, w *Write) error {
	if w.Replace {
		for _, name := range [][]byte{bucketEntries, bucketHeld} {
			if err := tx.DeleteBucket(name); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
	}
	entries, held := tx.Bucket(bucketEntries), tx.Bucket(bucketHeld)
	// In key order: bbolt inserts into an in-memory node that is split only at
	// commit, so unordered puts shift it on every insert (quadratic for a
	// snapshot's 200,000 keys), while ordered ones append.
	for _, ref := range sortedRefs(w.Puts) {
		e := w.Puts[ref]
		b, err := proto.Marshal(&pb.Entry{Ns: ref.NS, Key: ref.Key, Value: e.Value, CreateRev: e.CreateRev,
			ModRev: e.ModRev, Version: e.Version, SchemaVersion: e.SchemaVersion, SourceHash: e.SourceHash})
		if err != nil {
			return err
		}
		if err := entries.Put(keyOf(ref), b); err != nil {
			return err
		}
	}
	for _, ref := range w.Deletes {
		if err := entries.Delete(keyOf(ref)); err != nil {
			return err
		}
	}
	for _, ref := range w.Released {
		if err := held.Delete(keyOf(ref)); err != nil {
			return err
		}
	}
	for _, ref := range sortedRefs(w.Holds) {
		b, err := json.Marshal(w.Holds[ref])
		if err != nil {
			return err
		}
		if err := held.Put(keyOf(ref), b); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketMeta).Put(keyRev, u64(uint64(w.Rev)))
}

// keyOf joins namespace and key with NUL, which neither may contain.
func keyOf(ref KeyRef) []byte { return []byte(ref.NS + "\x00" + ref.Key) }

func refOf(k []byte) (KeyRef, error) {
	ns, key, ok := strings.Cut(string(k), "\x00")
	if !ok {
		return KeyRef{}, fmt.Errorf("bad record key %q", k)
	}
	return KeyRef{ns, key}, nil
}

func u64(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
