package worker

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/statesync/statesync/go/canonical"
	"github.com/statesync/statesync/go/digest"
	"github.com/statesync/statesync/go/schema"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

var t0 = time.Unix(1_700_000_000, 0)

func canon(t *testing.T, text string) []byte {
	t.Helper()
	b, err := canonical.Canonicalize([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, ns, key, value string, prevModRev int64) *pb.Change {
	b := canon(t, value)
	sum := sha256.Sum256(b)
	return &pb.Change{Ns: ns, Key: key, Kind: pb.Change_PUT, Value: b, ValueHash: sum[:], PrevModRev: prevModRev, Version: 1}
}

func del(ns, key string) *pb.Change {
	return &pb.Change{Ns: ns, Key: key, Kind: pb.Change_DELETE}
}

func batch(prev, rev int64, revisions ...*pb.Revision) *pb.SyncReply {
	return &pb.SyncReply{Msg: &pb.SyncReply_Batch{Batch: &pb.ChangeBatch{PrevRev: prev, Rev: rev, Revisions: revisions}}}
}

func revision(rev int64, changes ...*pb.Change) *pb.Revision {
	return &pb.Revision{Rev: rev, CommandId: fmt.Sprintf("c%d", rev), Changes: changes}
}

func newSession(handler Handler) *Session {
	return NewSession(SessionConfig{WorkerID: "w", Namespaces: []string{"app"}, Heartbeat: time.Second,
		StaleAfter: 5 * time.Second, Handler: handler}, NewState(0, nil, nil))
}

func receive(t *testing.T, s *Session, reply *pb.SyncReply) Output {
	t.Helper()
	out, err := s.Receive(reply, t0)
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return out
}

func lastAck(t *testing.T, out Output) *pb.Ack {
	t.Helper()
	if len(out.Send) == 0 || out.Send[len(out.Send)-1].GetAck() == nil {
		t.Fatalf("no ACK in %v", out.Send)
	}
	return out.Send[len(out.Send)-1].GetAck()
}

// rootOf is the digest a controller holding these canonical values computes.
func rootOf(values map[string][]byte) []byte {
	d := digest.New()
	for k, v := range values {
		d.Set(k, sha256.Sum256(v))
	}
	r := d.Root()
	return r[:]
}

func snapshot(t *testing.T, s *Session, rev int64, values map[string]string) Output {
	t.Helper()
	canonicalValues := map[string][]byte{}
	var entries []*pb.Entry
	for k, v := range values {
		canonicalValues[k] = canon(t, v)
		entries = append(entries, &pb.Entry{Ns: "app", Key: k, Value: canonicalValues[k], CreateRev: 1, ModRev: rev, Version: 1})
	}
	digests := []*pb.NamespaceDigest{{Ns: "app", Root: rootOf(canonicalValues), Count: int64(len(values))}}
	if out := receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Reason: "bootstrap", Rev: rev, Digests: digests}}}); len(out.Send) != 0 {
		t.Fatalf("resync answered %v", out.Send)
	}
	return receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Chunk{Chunk: &pb.SnapshotChunk{Rev: rev, Entries: entries, Digests: digests, Last: true}}})
}

func TestSnapshotBootstrapThenTail(t *testing.T) {
	s := newSession(nil)
	if h := s.Hello(t0).GetHello(); h.GetFromRev() != 0 || h.GetWorkerId() != "w" {
		t.Fatalf("hello %v", h)
	}
	out := snapshot(t, s, 5, map[string]string{"a": `{"x": 1}`, "b": `2`})
	if len(out.Writes) != 1 || !out.Writes[0].Replace || out.Writes[0].Rev != 5 {
		t.Fatalf("writes %+v", out.Writes)
	}
	ack := lastAck(t, out)
	want := rootOf(map[string][]byte{"a": canon(t, `{"x":1}`), "b": canon(t, "2")})
	if ack.GetRev() != 5 || !slices.Equal(ack.GetDigests()[0].GetRoot(), want) || ack.GetDigests()[0].GetCount() != 2 {
		t.Fatalf("ack %v", ack)
	}
	out = receive(t, s, batch(5, 7, revision(6, put(t, "app", "c", `"new"`, 0), put(t, "foreign", "x", "1", 0)), revision(7, del("app", "a"))))
	if _, kept := s.State().Entries[KeyRef{"foreign", "x"}]; kept {
		t.Fatal("a change to a namespace the worker did not subscribe to was kept")
	}
	ack = lastAck(t, out)
	want = rootOf(map[string][]byte{"b": canon(t, "2"), "c": canon(t, `"new"`)})
	if ack.GetRev() != 7 || !slices.Equal(ack.GetDigests()[0].GetRoot(), want) {
		t.Fatalf("ack after the batch %v", ack)
	}
	if len(out.Writes) != 2 || out.Writes[0].Rev != 6 || out.Writes[1].Rev != 7 {
		t.Fatalf("one write per revision expected, got %+v", out.Writes)
	}
	if h := s.Hello(t0).GetHello(); h.GetFromRev() != 7 {
		t.Fatalf("reconnect hello from %d, want 7", h.GetFromRev())
	}
}

func TestBatchVerdicts(t *testing.T) {
	// docs/wire.md, Batches: at A = 7, (5, 9] applies 8 and 9, (8, 9] is a gap, (3, 6] a replay.
	setup := func() *Session {
		s := newSession(nil)
		receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Progress{Progress: &pb.Progress{Rev: 7, HeadRev: 7}}})
		return s
	}
	s := setup()
	out := receive(t, s, batch(5, 9, revision(6, put(t, "app", "old", "1", 0)), revision(8, put(t, "app", "k", "8", 0)), revision(9, put(t, "app", "k", "9", 8))))
	if s.State().Rev != 9 || lastAck(t, out).GetRev() != 9 {
		t.Fatalf("rev %d", s.State().Rev)
	}
	if _, ok := s.State().Entries[KeyRef{"app", "old"}]; ok {
		t.Fatal("revision 6, at or before the applied revision, was applied")
	}
	if e := s.State().Entries[KeyRef{"app", "k"}]; string(e.Value) != "9" || e.ModRev != 9 {
		t.Fatalf("k = %+v", e)
	}

	s = setup()
	_, err := s.Receive(batch(8, 9, revision(9, put(t, "app", "k", "9", 0))), t0)
	var rc *ReconnectError
	if !errors.As(err, &rc) || rc.Resync || s.State().Rev != 7 {
		t.Fatalf("gap: %v, rev %d", err, s.State().Rev)
	}
	if h := s.Hello(t0).GetHello(); h.GetFromRev() != 7 {
		t.Fatalf("after a gap the worker reconnects from %d, want 7", h.GetFromRev())
	}

	s = setup()
	out = receive(t, s, batch(3, 6, revision(5, put(t, "app", "k", "5", 0))))
	if len(out.Writes) != 0 || lastAck(t, out).GetRev() != 7 {
		t.Fatalf("replay wrote %v", out.Writes)
	}

	s = setup()
	if _, err := s.Receive(batch(9, 8), t0); !errors.As(err, &rc) {
		t.Fatalf("rev < prev_rev: %v", err)
	}
}

func TestRefusedChangeIsHeldAndCountedWithTheControllersHash(t *testing.T) {
	s := newSession(func(e Event) error {
		if e.Op == "put" && e.Value == "bad" {
			return errors.New("no bad values")
		}
		return nil
	})
	receive(t, s, batch(0, 1, revision(1, put(t, "app", "k", `"good"`, 0))))
	out := receive(t, s, batch(1, 2, revision(2, put(t, "app", "k", `"bad"`, 1), put(t, "app", "other", "1", 0))))
	if len(out.Send) != 2 || out.Send[0].GetNack() == nil {
		t.Fatalf("sent %v", out.Send)
	}
	nack := out.Send[0].GetNack()
	if nack.GetRev() != 2 || nack.GetKey() != "k" || nack.GetReason() != "no bad values" {
		t.Fatalf("nack %v", nack)
	}
	if e := s.State().Entries[KeyRef{"app", "k"}]; string(e.Value) != `"good"` {
		t.Fatalf("the last good value was not kept: %s", e.Value)
	}
	ack := lastAck(t, out)
	goodHash := sha256.Sum256([]byte(`"good"`))
	if ack.GetRev() != 2 || len(ack.GetHeld()) != 1 || ack.GetHeld()[0].GetKey() != "k" || !slices.Equal(ack.GetHeld()[0].GetHeldHash(), goodHash[:]) {
		t.Fatalf("ack %v", ack)
	}
	controller := rootOf(map[string][]byte{"k": []byte(`"bad"`), "other": []byte("1")})
	if !slices.Equal(ack.GetDigests()[0].GetRoot(), controller) {
		t.Fatal("a worker right apart from its NACKs does not agree with the controller's digest")
	}
	if h := s.Hello(t0).GetHello(); len(h.GetHeld()) != 1 || h.GetHeld()[0].GetRev() != 2 {
		t.Fatalf("hello does not repeat the held key: %v", h.GetHeld())
	}
	out = receive(t, s, batch(2, 3, revision(3, put(t, "app", "k", `"fine"`, 2))))
	if ack := lastAck(t, out); len(ack.GetHeld()) != 0 {
		t.Fatalf("a later accepted change did not release the hold: %v", ack.GetHeld())
	}
}

func TestValueNotMatchingItsHashIsRefused(t *testing.T) {
	s := newSession(nil)
	c := put(t, "app", "k", "1", 0)
	c.ValueHash = make([]byte, 32)
	out := receive(t, s, batch(0, 1, revision(1, c)))
	if out.Send[0].GetNack().GetReason() != "the value does not match its hash" {
		t.Fatalf("sent %v", out.Send)
	}
	if _, ok := s.State().Entries[KeyRef{"app", "k"}]; ok || s.State().Rev != 1 {
		t.Fatal("a refused value was stored, or the revision did not count as applied")
	}
}

func delta(t *testing.T, key, patchText, result string, prevModRev int64) *pb.Change {
	c := put(t, "app", key, result, prevModRev)
	c.Patch, c.Value = []byte(patchText), nil
	return c
}

func TestDeltas(t *testing.T) {
	s := newSession(nil)
	receive(t, s, batch(0, 1, revision(1, put(t, "app", "k", `{"a":1}`, 0))))
	receive(t, s, batch(1, 2, revision(2, delta(t, "k", `[{"op":"add","path":"/b","value":2}]`, `{"a":1,"b":2}`, 1))))
	if e := s.State().Entries[KeyRef{"app", "k"}]; string(e.Value) != `{"a":1,"b":2}` || e.ModRev != 2 {
		t.Fatalf("k = %s at %d", e.Value, e.ModRev)
	}
	// A delta from another base: the replica drifted, request a resync.
	out, err := s.Receive(batch(2, 4, revision(3, put(t, "app", "j", "3", 0)), revision(4, delta(t, "k", `[]`, `{"a":1,"b":2}`, 3))), t0)
	var rc *ReconnectError
	if !errors.As(err, &rc) || !rc.Resync {
		t.Fatalf("wrong base: %v", err)
	}
	if s.State().Rev != 3 || len(out.Writes) != 1 || len(out.Send) != 0 {
		t.Fatalf("earlier revisions stay applied and nothing is ACKed: rev %d writes %d sent %v", s.State().Rev, len(out.Writes), out.Send)
	}
	if h := s.Hello(t0).GetHello(); h.GetFromRev() != 0 {
		t.Fatalf("a resync request reconnects from 0, not %d", h.GetFromRev())
	}
	// A delta whose result has another hash is drift too.
	s = newSession(nil)
	receive(t, s, batch(0, 1, revision(1, put(t, "app", "k", `{"a":1}`, 0))))
	bad := delta(t, "k", `[{"op":"add","path":"/b","value":3}]`, `{"a":1,"b":2}`, 1)
	if _, err := s.Receive(batch(1, 2, revision(2, bad)), t0); !errors.As(err, &rc) || !rc.Resync {
		t.Fatalf("wrong result: %v", err)
	}
}

func TestDeltaBasedOnARefusedValue(t *testing.T) {
	s := newSession(func(e Event) error {
		if m, ok := e.Value.(map[string]any); ok && m["bad"] == true {
			return errors.New("refused")
		}
		return nil
	})
	receive(t, s, batch(0, 1, revision(1, put(t, "app", "k", `{"a":1}`, 0))))
	receive(t, s, batch(1, 2, revision(2, put(t, "app", "k", `{"a":1,"bad":true}`, 1))))
	// Sent before the controller heard the NACK: based on the refused value.
	receive(t, s, batch(2, 3, revision(3, delta(t, "k", `[{"op":"remove","path":"/bad"}]`, `{"a":1}`, 2))))
	if e := s.State().Entries[KeyRef{"app", "k"}]; e.ModRev != 3 || len(s.State().Held) != 0 {
		t.Fatalf("k at %d, held %v", e.ModRev, s.State().Held)
	}
}

func TestSnapshotNotMatchingItsDigestKeepsTheReplica(t *testing.T) {
	s := newSession(nil)
	snapshot(t, s, 2, map[string]string{"a": "1"})
	receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Rev: 4, Digests: []*pb.NamespaceDigest{{Ns: "app", Root: make([]byte, 32)}}}}})
	out, err := s.Receive(&pb.SyncReply{Msg: &pb.SyncReply_Chunk{Chunk: &pb.SnapshotChunk{Rev: 4, Last: true}}}, t0)
	var rc *ReconnectError
	if !errors.As(err, &rc) || !rc.Resync || len(out.Writes) != 0 || s.State().Rev != 2 {
		t.Fatalf("%v, writes %v, rev %d", err, out.Writes, s.State().Rev)
	}
}

func TestSnapshotReplacesAndReleases(t *testing.T) {
	s := newSession(func(e Event) error {
		if e.Value == "no" {
			return errors.New("refused")
		}
		return nil
	})
	receive(t, s, batch(0, 2, revision(1, put(t, "app", "gone", "1", 0)), revision(2, put(t, "app", "k", `"no"`, 0))))
	if len(s.State().Held) != 1 {
		t.Fatal("k is not held")
	}
	out := snapshot(t, s, 9, map[string]string{"k": `"yes"`, "bad": `"no"`})
	if _, ok := s.State().Entries[KeyRef{"app", "gone"}]; ok {
		t.Fatal("a key absent from the snapshot survived")
	}
	held := s.State().Held
	if _, ok := held[KeyRef{"app", "k"}]; ok || len(held) != 1 || held[KeyRef{"app", "bad"}].Rev != 9 {
		t.Fatalf("held after the snapshot: %v", held)
	}
	if out.Send[0].GetNack().GetKey() != "bad" || lastAck(t, out).GetRev() != 9 {
		t.Fatalf("sent %v", out.Send)
	}
	// A resync in the middle of a snapshot starts over; progress there is
	// ignored; a batch there is a protocol error.
	receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Rev: 10}}})
	receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Chunk{Chunk: &pb.SnapshotChunk{Rev: 10, Entries: []*pb.Entry{{Ns: "app", Key: "partial", Value: []byte("1")}}}}})
	receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Rev: 12}}})
	if out := receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Progress{Progress: &pb.Progress{Rev: 11}}}); len(out.Send)+len(out.Writes) != 0 {
		t.Fatal("progress during a snapshot was taken")
	}
	if _, err := s.Receive(batch(9, 10), t0); err == nil {
		t.Fatal("a batch in the middle of a snapshot was accepted")
	}
}

// A snapshot's digest is the controller's, refused keys included (held keys
// count with the controller's hash), and the same as recounting the state.
func TestSnapshotDigestCountsRefusedKeysAsTheController(t *testing.T) {
	s := newSession(func(e Event) error {
		if e.Value == "no" || (e.Op == "delete" && e.Key == "stays") {
			return errors.New("refused")
		}
		return nil
	})
	receive(t, s, batch(0, 2, revision(1, put(t, "app", "stays", "1", 0)), revision(2, put(t, "app", "bad", `"old"`, 0))))
	values := map[string]string{"bad": `"no"`, "new-bad": `"no"`, "good": `{"a":[1]}`}
	out := snapshot(t, s, 9, values)
	controller := map[string][]byte{}
	for k, v := range values {
		controller[k] = canon(t, v)
	}
	if got := lastAck(t, out).GetDigests()[0].GetRoot(); !slices.Equal(got, rootOf(controller)) {
		t.Fatalf("ACKed root %x, the controller's is %x", got, rootOf(controller))
	}
	if len(s.State().Held) != 3 || string(s.State().Entries[KeyRef{"app", "bad"}].Value) != `"old"` {
		t.Fatalf("held %v, entries %v", s.State().Held, s.State().Entries)
	}
	recounted := NewState(s.State().Rev, s.State().Entries, s.State().Held)
	if recounted.Digest("app").Root() != s.State().Digest("app").Root() || recounted.Digest("app").Count() != 3 {
		t.Fatal("the snapshot's adopted digest differs from a recount of the state")
	}
}

func TestReconcileResyncRepairAndQuery(t *testing.T) {
	s := newSession(nil)
	receive(t, s, batch(0, 1, revision(1, put(t, "app", "a", "1", 0), put(t, "app", "b", "2", 0))))
	out := receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Rev: 5, Reconcile: true}}})
	if s.State().Rev != 5 || lastAck(t, out).GetRev() != 5 || len(s.State().Entries) != 2 {
		t.Fatal("a reconcile resync did not keep the replica at the new revision")
	}
	out = receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Query{Query: &pb.DigestQuery{Id: 3, Ns: "app", Prefixes: []string{""}}}})
	answer := out.Send[0].GetAnswer()
	if answer.GetId() != 3 || answer.GetRev() != 5 || !answer.GetNodes()[0].GetIsLeaves() || len(answer.GetNodes()[0].GetLeaves()) != 8 {
		t.Fatalf("answer %v", answer)
	}
	skipped := receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Repair{Repair: &pb.Repair{Id: 1, Rev: 4, Deletes: []*pb.KeyRef{{Ns: "app", Key: "a"}}}}})
	if lastAck(t, skipped).GetRepaired() != 1 || len(s.State().Entries) != 2 {
		t.Fatal("a repair for another revision was applied")
	}
	fixed := canon(t, "20")
	out = receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Repair{Repair: &pb.Repair{Id: 2, Rev: 5,
		Entries: []*pb.Entry{{Ns: "app", Key: "b", Value: fixed, ModRev: 5}}, Deletes: []*pb.KeyRef{{Ns: "app", Key: "a"}}}}})
	ack := lastAck(t, out)
	if ack.GetRepaired() != 2 || !slices.Equal(ack.GetDigests()[0].GetRoot(), rootOf(map[string][]byte{"b": fixed})) {
		t.Fatalf("ack after repair %v", ack)
	}
}

func TestHeartbeatsAndStaleness(t *testing.T) {
	s := newSession(nil)
	s.Hello(t0)
	if out, _ := s.Tick(t0.Add(500 * time.Millisecond)); len(out.Send) != 0 {
		t.Fatal("a heartbeat before the interval")
	}
	out, err := s.Tick(t0.Add(time.Second))
	if err != nil || len(out.Send) != 1 || out.Send[0].GetHeartbeat() == nil {
		t.Fatalf("no heartbeat after the interval: %v %v", out.Send, err)
	}
	receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Heartbeat{Heartbeat: &pb.Heartbeat{}}})
	var rc *ReconnectError
	if _, err := s.Tick(t0.Add(5 * time.Second)); !errors.As(err, &rc) || rc.Resync {
		t.Fatalf("silence for stale_after: %v", err)
	}
}

// TestRandomBatchesKeepTheDigestConsistent applies random batches and checks
// that the incrementally kept digest equals one rebuilt from the entries,
// and that every ACK is cumulative and never ahead of what was sent.
func TestRandomBatchesKeepTheDigestConsistent(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		s := newSession(nil)
		controller := map[string][]byte{}
		modRevs := map[string]int64{}
		rev := int64(0)
		for range 30 {
			prev := rev
			var revisions []*pb.Revision
			for range rng.IntN(4) {
				rev++
				key := fmt.Sprintf("k%d", rng.IntN(8))
				if rng.IntN(3) == 0 {
					delete(controller, key)
					revisions = append(revisions, revision(rev, del("app", key)))
					continue
				}
				value := fmt.Sprintf(`{"n":%d}`, rng.IntN(100))
				controller[key] = canon(t, value)
				revisions = append(revisions, revision(rev, put(t, "app", key, value, modRevs[key])))
				modRevs[key] = rev
			}
			rev += int64(rng.IntN(2)) // a revision in another namespace
			ack := lastAck(t, receive(t, s, batch(prev, rev, revisions...)))
			if ack.GetRev() != rev || !slices.Equal(ack.GetDigests()[0].GetRoot(), rootOf(controller)) {
				t.Fatalf("seed %d: ack %v disagrees with the controller at %d", seed, ack, rev)
			}
		}
		rebuilt := NewState(s.State().Rev, s.State().Entries, nil)
		if rebuilt.Digest("app").Root() != s.State().Digest("app").Root() {
			t.Fatalf("seed %d: incremental digest differs from a rebuilt one", seed)
		}
	}
}

func TestNoNackForARevisionThatDoesNotApply(t *testing.T) {
	s := newSession(func(e Event) error {
		if e.Key == "refused" {
			return errors.New("refused")
		}
		return nil
	})
	receive(t, s, batch(0, 1, revision(1, put(t, "app", "k", `{"a":1}`, 0))))
	out, err := s.Receive(batch(1, 2, revision(2, put(t, "app", "refused", "1", 0), delta(t, "k", `[]`, `{"a":1}`, 7))), t0)
	var rc *ReconnectError
	if !errors.As(err, &rc) || !rc.Resync || len(out.Send) != 0 || len(s.State().Held) != 0 {
		t.Fatalf("%v: sent %v, held %v", err, out.Send, s.State().Held)
	}
}

func TestDeclaredVersionsAndContractSchemas(t *testing.T) {
	s := NewSession(SessionConfig{WorkerID: "w", Namespaces: []string{"app", "free"}, Heartbeat: time.Second,
		Versions: map[string][]int32{"app": {1, 2}}}, NewState(0, nil, nil))
	hello := s.Hello(t0).GetHello()
	if len(hello.GetVersions()) != 1 || hello.GetVersions()[0].GetReplicaVersion() != -1 || !slices.Equal(hello.GetVersions()[0].GetVersions(), []int32{1, 2}) {
		t.Fatalf("hello versions %v", hello.GetVersions())
	}
	v2, err := schema.Compile(map[string]any{"type": "object", "required": []any{"priority"}})
	if err != nil {
		t.Fatal(err)
	}
	s.SetContractSchemas("app", map[int32]*schema.Schema{2: v2})
	if !s.ContractSchema("app", 2) || s.ContractSchema("app", 1) {
		t.Fatal("ContractSchema does not say which versions the session has")
	}
	served := func(key, value string, version int32) *pb.Change {
		c := put(t, "app", key, value, 0)
		c.SchemaVersion = version
		return c
	}
	out := receive(t, s, batch(0, 3,
		revision(1, served("ok", `{"priority":"express"}`, 2)),
		revision(2, served("bad", `{}`, 2)),
		revision(3, served("unknown", `{"priority":"x"}`, 1))))
	var reasons []string
	for _, m := range out.Send {
		if n := m.GetNack(); n != nil {
			reasons = append(reasons, n.GetKey()+": "+n.GetReason())
		}
	}
	if len(reasons) != 2 || !strings.Contains(reasons[0], "bad: does not conform to schema v2") ||
		!strings.Contains(reasons[1], "unknown: served in schema v1, which this worker has no schema for") {
		t.Fatalf("nacks %q", reasons)
	}
	if h := s.Hello(t0).GetHello(); h.GetVersions()[0].GetReplicaVersion() != 2 {
		t.Fatalf("replica version %d after values served in v2", h.GetVersions()[0].GetReplicaVersion())
	}
}

func TestNamespacesAreSortedAndDeduplicated(t *testing.T) {
	given := []string{"routes", "app", "routes", "flags"}
	s := NewSession(SessionConfig{WorkerID: "w", Namespaces: given, Heartbeat: time.Second}, NewState(0, nil, nil))
	want := []string{"app", "flags", "routes"}
	if got := s.Hello(t0).GetHello().GetNamespaces(); !slices.Equal(got, want) {
		t.Fatalf("hello namespaces %v, want %v", got, want)
	}
	var acked []string
	for _, d := range lastAck(t, receive(t, s, &pb.SyncReply{Msg: &pb.SyncReply_Progress{Progress: &pb.Progress{Rev: 3}}})).GetDigests() {
		acked = append(acked, d.GetNs())
	}
	if !slices.Equal(acked, want) {
		t.Fatalf("ACK digests for %v, want %v", acked, want)
	}
	if !slices.Equal(given, []string{"routes", "app", "routes", "flags"}) {
		t.Fatalf("the caller's namespaces were modified: %v", given)
	}
}
