package worker

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	pb "github.com/statesync/statesync/go/statesyncv1"
)

// replicaKind is one Replica implementation for the tests every one passes.
type replicaKind struct {
	name string
	// open returns a new, empty replica and its state.
	open func(t testing.TB) (Replica, *State)
	// reread returns what r stored, as the next Worker would see it: the
	// bbolt file closed and opened again; the memory replica loaded, and kept.
	reread func(t testing.TB, r Replica) (Replica, *State)
}

var replicaKinds = []replicaKind{
	{
		name: "bbolt",
		open: func(t testing.TB) (Replica, *State) {
			r, state, err := OpenReplica(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			return r, state
		},
		reread: func(t testing.TB, r Replica) (Replica, *State) {
			bolt := r.(*BoltReplica)
			if err := bolt.Close(); err != nil {
				t.Fatal(err)
			}
			reopened, state, err := OpenReplica(filepath.Dir(bolt.path))
			if err != nil {
				t.Fatalf("reopening the replica: %v", err)
			}
			t.Cleanup(func() { _ = reopened.Close() })
			return reopened, state
		},
	},
	{
		name: "memory",
		open: func(testing.TB) (Replica, *State) {
			r := NewMemoryReplica()
			return r, r.Load()
		},
		reread: func(_ testing.TB, r Replica) (Replica, *State) {
			return r, r.(*MemoryReplica).Load()
		},
	},
}

func TestReplicaStoresWhatTheSessionApplied(t *testing.T) {
	for _, kind := range replicaKinds {
		t.Run(kind.name, func(t *testing.T) {
			replica, state := kind.open(t)
			if state.Rev != 0 || len(state.Entries) != 0 || len(state.Held) != 0 {
				t.Fatalf("a new replica at %d with %d entries and %d held", state.Rev, len(state.Entries), len(state.Held))
			}
			s := NewSession(SessionConfig{WorkerID: "w", Namespaces: []string{"app"}, Handler: func(e Event) error {
				if e.Key == "held" {
					return errors.New("refused")
				}
				return nil
			}}, state)
			out := snapshot(t, s, 3, map[string]string{"a": "1", "b": `{"x":[1,2]}`})
			out2 := receive(t, s, batch(3, 5, revision(4, put(t, "app", "c", `"c"`, 0), del("app", "a")), revision(5, put(t, "app", "held", "1", 0))))
			if err := replica.Store(append(out.Writes, out2.Writes...)); err != nil {
				t.Fatal(err)
			}
			replica, reread := kind.reread(t, replica)
			if reread.Rev != 5 || len(reread.Entries) != 2 || len(reread.Held) != 1 {
				t.Fatalf("read back at %d with %d entries and %d held", reread.Rev, len(reread.Entries), len(reread.Held))
			}
			if !reflect.DeepEqual(reread.Entries, s.State().Entries) || !reflect.DeepEqual(reread.Held, s.State().Held) {
				t.Fatalf("read back %+v %+v, the session holds %+v %+v", reread.Entries, reread.Held, s.State().Entries, s.State().Held)
			}
			if reread.Digest("app").Root() != s.State().Digest("app").Root() {
				t.Fatal("the digest read back differs")
			}
			after := NewSession(SessionConfig{WorkerID: "w", Namespaces: []string{"app"}}, reread)
			if h := after.Hello(t0).GetHello(); h.GetFromRev() != 5 || h.GetHeld()[0].GetKey() != "held" {
				t.Fatalf("hello after a restart %v", h)
			}
			// A snapshot drops everything it does not hold, held keys included.
			out3 := snapshot(t, after, 8, map[string]string{"z": "0"})
			if err := replica.Store(out3.Writes); err != nil {
				t.Fatal(err)
			}
			if _, reread = kind.reread(t, replica); reread.Rev != 8 || len(reread.Entries) != 1 || len(reread.Held) != 0 {
				t.Fatalf("after the snapshot: at %d with %d entries and %d held", reread.Rev, len(reread.Entries), len(reread.Held))
			}
		})
	}
}

// Random batches of puts and deletes over a few keys, some refused (held) and
// released again: after every Store, what each replica reads back is exactly
// the session's state.
func TestReplicaFollowsRandomBatches(t *testing.T) {
	for _, kind := range replicaKinds {
		t.Run(kind.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, 13))
			replica, state := kind.open(t)
			refuseOddRevsOfK5 := func(e Event) error {
				if e.Key == "k5" && e.Rev%2 == 1 {
					return errors.New("odd")
				}
				return nil
			}
			s := NewSession(SessionConfig{WorkerID: "w", Namespaces: []string{"app"}, Handler: refuseOddRevsOfK5}, state)
			if err := replica.Store(snapshot(t, s, 1, map[string]string{"k0": "0"}).Writes); err != nil {
				t.Fatal(err)
			}
			rev, everHeld := int64(1), false
			for round := range 60 {
				prev := rev
				var revisions []*pb.Revision
				for range 1 + rng.IntN(4) {
					rev++
					var changes []*pb.Change
					for range 1 + rng.IntN(3) {
						key := fmt.Sprintf("k%d", rng.IntN(6))
						if rng.IntN(3) == 0 {
							changes = append(changes, del("app", key))
						} else {
							changes = append(changes, put(t, "app", key, fmt.Sprint(rng.IntN(1000)), 0))
						}
					}
					revisions = append(revisions, revision(rev, changes...))
				}
				out := receive(t, s, batch(prev, rev, revisions...))
				if err := replica.Store(out.Writes); err != nil {
					t.Fatal(err)
				}
				var reread *State
				replica, reread = kind.reread(t, replica)
				if reread.Rev != rev || !reflect.DeepEqual(reread.Entries, s.State().Entries) || !reflect.DeepEqual(reread.Held, s.State().Held) {
					t.Fatalf("round %d: read back at %d %+v %+v, the session at %d %+v %+v", round,
						reread.Rev, reread.Entries, reread.Held, rev, s.State().Entries, s.State().Held)
				}
				if reread.Digest("app").Root() != s.State().Digest("app").Root() {
					t.Fatalf("round %d: the digest read back differs", round)
				}
				everHeld = everHeld || len(reread.Held) > 0
			}
			if !everHeld {
				t.Fatal("no key was ever held: the test did not exercise holds")
			}
		})
	}
}

func TestReplicaRefusesWritesAfterClose(t *testing.T) {
	for _, kind := range replicaKinds {
		t.Run(kind.name, func(t *testing.T) {
			replica, _ := kind.open(t)
			if err := replica.Close(); err != nil {
				t.Fatal(err)
			}
			if err := replica.Store([]*Write{{Rev: 1}}); err == nil {
				t.Fatal("a Store after Close succeeded")
			}
		})
	}
}

func TestBoltReplicaIsHeldByOneProcess(t *testing.T) {
	dir := t.TempDir()
	replica, _, err := OpenReplica(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if _, _, err := OpenReplica(dir); !errors.Is(err, ErrReplicaInUse) {
		t.Fatalf("a second open of a replica in use: %v", err)
	}
}

func TestCorruptReplicaIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ReplicaFile), []byte("not a bolt file, not at all, no"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenReplica(dir); !errors.Is(err, ErrReplicaCorrupt) {
		t.Fatalf("opening garbage: %v", err)
	}
	w, err := Open(Config{ID: "w", Namespaces: []string{"app"}, Dir: dir})
	if err != nil {
		t.Fatalf("the worker did not move the corrupt replica aside: %v", err)
	}
	defer w.Close()
	if w.AppliedRev() != 0 {
		t.Fatal("a fresh replica is not at revision 0")
	}
}
