package worker

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestReplicaSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	replica, state, err := OpenReplica(dir)
	if err != nil {
		t.Fatal(err)
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
	if _, _, err := OpenReplica(dir); !errors.Is(err, ErrReplicaInUse) {
		t.Fatalf("a second open of a replica in use: %v", err)
	}
	if err := replica.Close(); err != nil {
		t.Fatal(err)
	}
	replica, reopened, err := OpenReplica(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if reopened.Rev != 5 || len(reopened.Entries) != 2 || len(reopened.Held) != 1 {
		t.Fatalf("reopened at %d with %d entries and %d held", reopened.Rev, len(reopened.Entries), len(reopened.Held))
	}
	if reopened.Digest("app").Root() != s.State().Digest("app").Root() {
		t.Fatal("the reopened replica's digest differs")
	}
	after := NewSession(SessionConfig{WorkerID: "w", Namespaces: []string{"app"}}, reopened)
	if h := after.Hello(t0).GetHello(); h.GetFromRev() != 5 || h.GetHeld()[0].GetKey() != "held" {
		t.Fatalf("hello after a restart %v", h)
	}
	// A snapshot on the reopened replica drops everything it does not hold.
	out3 := snapshot(t, after, 8, map[string]string{"z": "0"})
	if err := replica.Store(out3.Writes); err != nil {
		t.Fatal(err)
	}
	if n := len(after.State().Entries); n != 1 {
		t.Fatalf("%d entries after the snapshot", n)
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
