package worker

import (
	"crypto/sha256"
	"fmt"
	"testing"
	"time"

	"github.com/statesync/statesync/go/digest"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

// snapshotReplies is a bootstrap as the controller sends it: a resync, then
// chunks of chunkSize entries (values like the bench's 100-byte documents).
func snapshotReplies(keys, chunkSize int, rev int64) []*pb.SyncReply {
	d := digest.New()
	entries := make([]*pb.Entry, keys)
	for i := range entries {
		key := fmt.Sprintf("key-%08d", i)
		value := fmt.Appendf(nil, `{"id":%d,"payload":"%080d"}`, i, i)
		d.Set(key, sha256.Sum256(value))
		entries[i] = &pb.Entry{Ns: "app", Key: key, Value: value, CreateRev: int64(i + 1), ModRev: int64(i + 1), Version: 1}
	}
	root := d.Root()
	digests := []*pb.NamespaceDigest{{Ns: "app", Root: root[:], Count: int64(keys)}}
	replies := []*pb.SyncReply{{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Reason: "bootstrap", Rev: rev, Digests: digests}}}}
	for start := 0; start < keys; start += chunkSize {
		end := min(start+chunkSize, keys)
		chunk := &pb.SnapshotChunk{Rev: rev, Entries: entries[start:end], Last: end == keys}
		if chunk.Last {
			chunk.Digests = digests
		}
		replies = append(replies, &pb.SyncReply{Msg: &pb.SyncReply_Chunk{Chunk: chunk}})
	}
	return replies
}

// BenchmarkSnapshotApply bootstraps an empty on-disk replica from a snapshot
// of 200,000 keys in chunks of 2,000, as the Worker's loop does: each reply
// through the Session, its writes made durable by the Replica.
func BenchmarkSnapshotApply(b *testing.B) {
	replies := snapshotReplies(200_000, 2_000, 200_000)
	for b.Loop() {
		b.StopTimer()
		replica, state, err := OpenReplica(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		s := NewSession(SessionConfig{WorkerID: "w", Namespaces: []string{"app"}}, state)
		b.StartTimer()
		for _, reply := range replies {
			out, err := s.Receive(reply, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			if err := replica.Store(out.Writes); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if s.State().Rev != 200_000 || len(s.State().Entries) != 200_000 {
			b.Fatalf("bootstrapped to %d with %d entries", s.State().Rev, len(s.State().Entries))
		}
		if err := replica.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(200_000*b.N)/b.Elapsed().Seconds(), "keys/s")
}

// tailBatches are n one-revision batches, each putting one of keys keys (a
// 100-byte document, as the bench's fan-out writes) after revision base.
func tailBatches(n, keys int, base int64) []*pb.SyncReply {
	replies := make([]*pb.SyncReply, n)
	for i := range replies {
		rev := base + int64(i) + 1
		value := fmt.Appendf(nil, `{"id":%d,"payload":"%080d"}`, i, rev)
		sum := sha256.Sum256(value)
		change := &pb.Change{Ns: "app", Key: fmt.Sprintf("key-%08d", i%keys), Kind: pb.Change_PUT, Value: value, ValueHash: sum[:], Version: 1}
		revision := &pb.Revision{Rev: rev, CommandId: fmt.Sprintf("c%d", rev), Changes: []*pb.Change{change}}
		replies[i] = &pb.SyncReply{Msg: &pb.SyncReply_Batch{Batch: &pb.ChangeBatch{PrevRev: rev - 1, Rev: rev, Revisions: []*pb.Revision{revision}}}}
	}
	return replies
}

// BenchmarkTailBatch is the fan-out path of a worker at the head: one
// single-change batch through the Session (with a handler, as the events
// printer has) and stored by each replica kind, per op, over 20,000 keys.
func BenchmarkTailBatch(b *testing.B) {
	const keys = 20_000
	for _, kind := range replicaKinds {
		b.Run(kind.name, func(b *testing.B) {
			replica, state := kind.open(b)
			s := NewSession(SessionConfig{WorkerID: "w", Namespaces: []string{"app"}, Handler: func(Event) error { return nil }}, state)
			for _, reply := range snapshotReplies(keys, 2_000, 1) {
				out, err := s.Receive(reply, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				if err := replica.Store(out.Writes); err != nil {
					b.Fatal(err)
				}
			}
			replies := tailBatches(b.N, keys, 1)
			b.ResetTimer()
			for _, reply := range replies {
				out, err := s.Receive(reply, time.Now())
				if err != nil {
					b.Fatal(err)
				}
				if err := replica.Store(out.Writes); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if want := int64(b.N) + 1; s.State().Rev != want {
				b.Fatalf("at revision %d, want %d", s.State().Rev, want)
			}
		})
	}
}
