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
