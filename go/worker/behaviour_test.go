package worker

// The Go session against the behaviour vectors (conformance/behaviour): each
// vector is a scripted Sync exchange run without a network. The replies, the
// stream ends (and the next stream's hello) and the replica after each step
// must be exactly the vector's; conformance/README.md says how to run them,
// and crates/worker/tests/behaviour.rs and tests/test_behaviour.py run the
// same file against the Rust and the Python worker.

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/statesync/statesync/go/canonical"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

type behaviourFile struct {
	FormatVersion int               `json:"format_version"`
	Vectors       []behaviourVector `json:"vectors"`
}

type behaviourVector struct {
	Name    string           `json:"name"`
	Options behaviourOptions `json:"options"`
	Initial replicaState     `json:"initial"`
	Hello   json.RawMessage  `json:"hello"`
	Steps   []behaviourStep  `json:"steps"`
}

type behaviourOptions struct {
	WorkerID   string       `json:"worker_id"`
	Namespaces []string     `json:"namespaces"`
	Deltas     bool         `json:"deltas"`
	HeartbeatS float64      `json:"heartbeat_s"`
	Reject     []rejectRule `json:"reject"`
}

// rejectRule refuses a put of exactly Value (canonical JSON text), or a delete.
type rejectRule struct {
	NS     string  `json:"ns"`
	Key    string  `json:"key"`
	Op     string  `json:"op"`
	Value  *string `json:"value"`
	Reason string  `json:"reason"`
}

type behaviourStep struct {
	Receive   json.RawMessage   `json:"receive"`
	Send      []json.RawMessage `json:"send"`
	Reconnect json.RawMessage   `json:"reconnect"`
	Replica   replicaState      `json:"replica"`
}

// replicaState is a replica as the vectors spell it (entries sorted by
// namespace and key, held keys too).
type replicaState struct {
	AppliedRev int64          `json:"applied_rev"`
	Entries    []replicaEntry `json:"entries"`
	Held       []replicaHeld  `json:"held"`
}

type replicaEntry struct {
	NS        string `json:"ns"`
	Key       string `json:"key"`
	Value     string `json:"value"`
	CreateRev int64  `json:"create_rev"`
	ModRev    int64  `json:"mod_rev"`
	Version   int64  `json:"version"`
}

type replicaHeld struct {
	NS     string `json:"ns"`
	Key    string `json:"key"`
	Rev    int64  `json:"rev"`
	Reason string `json:"reason"`
	// Refused is the hex hash the key's digest counts; "" for a refused delete.
	Refused string `json:"refused"`
}

func loadBehaviourVectors(t *testing.T) []behaviourVector {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "conformance", "behaviour", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var file behaviourFile
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("conformance/behaviour/vectors.json: %v", err)
	}
	if file.FormatVersion != 1 {
		t.Fatalf("conformance/behaviour/vectors.json: unknown format_version %d", file.FormatVersion)
	}
	if len(file.Vectors) < 10 {
		t.Fatalf("the behaviour vectors are missing: %d in the file", len(file.Vectors))
	}
	return file.Vectors
}

// seedWrite is the write that makes an empty replica hold state.
func seedWrite(t *testing.T, state replicaState) *Write {
	t.Helper()
	w := &Write{Rev: state.AppliedRev, Puts: map[KeyRef]Entry{}, Holds: map[KeyRef]Held{}}
	for _, e := range state.Entries {
		w.Puts[KeyRef{e.NS, e.Key}] = Entry{Value: []byte(e.Value), CreateRev: e.CreateRev, ModRev: e.ModRev, Version: e.Version}
	}
	for _, h := range state.Held {
		ref := KeyRef{h.NS, h.Key}
		counted, err := hex.DecodeString(h.Refused)
		if err != nil {
			t.Fatalf("held %s/%s: refused %q: %v", h.NS, h.Key, h.Refused, err)
		}
		held := Held{Rev: h.Rev, Reason: h.Reason}
		if len(counted) > 0 {
			held.Counted = counted
		}
		if kept, ok := w.Puts[ref]; ok {
			sum := sha256.Sum256(kept.Value)
			held.HeldHash = sum[:]
		}
		w.Holds[ref] = held
	}
	return w
}

// stateOf spells s as the vectors do: the subscribed namespaces' entries and
// every held key.
func stateOf(s *State, namespaces []string) replicaState {
	out := replicaState{AppliedRev: s.Rev, Entries: []replicaEntry{}, Held: []replicaHeld{}}
	for _, ref := range sortedRefs(s.Entries) {
		if !slices.Contains(namespaces, ref.NS) {
			continue
		}
		e := s.Entries[ref]
		out.Entries = append(out.Entries, replicaEntry{NS: ref.NS, Key: ref.Key, Value: string(e.Value),
			CreateRev: e.CreateRev, ModRev: e.ModRev, Version: e.Version})
	}
	for _, ref := range sortedRefs(s.Held) {
		h := s.Held[ref]
		out.Held = append(out.Held, replicaHeld{NS: ref.NS, Key: ref.Key, Rev: h.Rev, Reason: h.Reason,
			Refused: hex.EncodeToString(h.Counted)})
	}
	return out
}

func normalized(s replicaState) replicaState {
	if s.Entries == nil {
		s.Entries = []replicaEntry{}
	}
	if s.Held == nil {
		s.Held = []replicaHeld{}
	}
	return s
}

// rejecting is the vector's handler: it refuses the listed puts (of exactly
// that value) and deletes, and accepts everything else.
func rejecting(rules []rejectRule) Handler {
	return func(e Event) error {
		for _, rule := range rules {
			if rule.NS != e.NS || rule.Key != e.Key || rule.Op != e.Op {
				continue
			}
			if rule.Value != nil {
				value, err := canonical.Encode(e.Value)
				if err != nil || string(value) != *rule.Value {
					continue
				}
			}
			return errors.New(rule.Reason)
		}
		return nil
	}
}

func decodeRequest(t *testing.T, what string, raw json.RawMessage) *pb.SyncRequest {
	t.Helper()
	var m pb.SyncRequest
	if err := protojson.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: SyncRequest %s: %v", what, raw, err)
	}
	return &m
}

func show(messages []*pb.SyncRequest) string {
	out := "["
	for i, m := range messages {
		if i > 0 {
			out += ", "
		}
		out += protojson.Format(m)
	}
	return out + "]"
}

// runBehaviour runs one vector over a replica of the given kind: each step's
// writes are stored as the Worker loop stores them, and the replica read
// back must equal the vector's as well as the session's own state.
func runBehaviour(t *testing.T, v behaviourVector, kind replicaKind) {
	opts := v.Options
	replica, _ := kind.open(t)
	if err := replica.Store([]*Write{seedWrite(t, v.Initial)}); err != nil {
		t.Fatal(err)
	}
	replica, state := kind.reread(t, replica)
	if got, want := stateOf(state, opts.Namespaces), normalized(v.Initial); !reflect.DeepEqual(got, want) {
		t.Fatalf("seeded replica %+v, want %+v", got, want)
	}
	session := NewSession(SessionConfig{
		WorkerID:   opts.WorkerID,
		Namespaces: opts.Namespaces,
		Deltas:     opts.Deltas,
		Heartbeat:  time.Duration(opts.HeartbeatS * float64(time.Second)),
		Handler:    rejecting(opts.Reject),
	}, state)
	if got, want := session.Hello(t0), decodeRequest(t, "hello", v.Hello); !proto.Equal(got, want) {
		t.Fatalf("hello %s, want %s", protojson.Format(got), protojson.Format(want))
	}
	for i, step := range v.Steps {
		var reply pb.SyncReply
		if err := protojson.Unmarshal(step.Receive, &reply); err != nil {
			t.Fatalf("step %d: SyncReply %s: %v", i, step.Receive, err)
		}
		out, ended := session.Receive(&reply, t0)
		if ended != nil {
			var rc *ReconnectError
			if !errors.As(ended, &rc) {
				t.Fatalf("step %d: Receive failed with %T %v, not a stream end", i, ended, ended)
			}
		}
		if err := replica.Store(out.Writes); err != nil {
			t.Fatalf("step %d: storing the writes: %v", i, err)
		}
		want := make([]*pb.SyncRequest, len(step.Send))
		for j, raw := range step.Send {
			want[j] = decodeRequest(t, fmt.Sprintf("step %d send %d", i, j), raw)
		}
		if !slices.EqualFunc(out.Send, want, func(a, b *pb.SyncRequest) bool { return proto.Equal(a, b) }) {
			t.Fatalf("step %d: sent %s, want %s", i, show(out.Send), show(want))
		}
		if step.Reconnect != nil {
			if ended == nil {
				t.Fatalf("step %d: the stream must end", i)
			}
			got, want := session.Hello(t0), decodeRequest(t, fmt.Sprintf("step %d reconnect", i), step.Reconnect)
			if !proto.Equal(got, want) {
				t.Fatalf("step %d: reconnect hello %s, want %s", i, protojson.Format(got), protojson.Format(want))
			}
		} else if ended != nil {
			t.Fatalf("step %d: the stream must go on, it ended: %v", i, ended)
		}
		wantState := normalized(step.Replica)
		if got := stateOf(session.State(), opts.Namespaces); !reflect.DeepEqual(got, wantState) {
			t.Fatalf("step %d: session replica %+v, want %+v", i, got, wantState)
		}
		// What the writes stored is what the session holds.
		var stored *State
		replica, stored = kind.reread(t, replica)
		if got := stateOf(stored, opts.Namespaces); !reflect.DeepEqual(got, wantState) {
			t.Fatalf("step %d: stored replica %+v, want %+v", i, got, wantState)
		}
	}
}

func TestBehaviourVectors(t *testing.T) {
	vectors := loadBehaviourVectors(t)
	passed := 0
	for _, v := range vectors {
		// Every vector runs over every replica kind (a failure does not hide
		// the next ones); it passes when it passes over all of them.
		if t.Run(v.Name, func(t *testing.T) {
			for _, kind := range replicaKinds {
				t.Run(kind.name, func(t *testing.T) { runBehaviour(t, v, kind) })
			}
		}) {
			passed++
		}
	}
	fmt.Printf("behaviour vectors: %d/%d passed\n", passed, len(vectors))
}
