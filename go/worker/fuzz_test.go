package worker

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/statesync/statesync/go/statesyncv1"
)

// FuzzSessionReceive feeds arbitrary controller messages to a session: it
// may refuse them (a reconnect), but never panics, and its ACKs never claim
// a revision beyond what the controller sent.
func FuzzSessionReceive(f *testing.F) {
	for _, seed := range []*pb.SyncReply{
		{Msg: &pb.SyncReply_Batch{Batch: &pb.ChangeBatch{PrevRev: 0, Rev: 2, Revisions: []*pb.Revision{{Rev: 1, Changes: []*pb.Change{{Ns: "app", Key: "k", Value: []byte("1")}}}}}}},
		{Msg: &pb.SyncReply_Batch{Batch: &pb.ChangeBatch{PrevRev: 0, Rev: 1, Revisions: []*pb.Revision{{Rev: 1, Changes: []*pb.Change{{Ns: "app", Key: "k", Patch: []byte(`[{"op":"add","path":"","value":1}]`), PrevModRev: 0}}}}}}},
		{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Rev: 3}}},
		{Msg: &pb.SyncReply_Chunk{Chunk: &pb.SnapshotChunk{Rev: 3, Last: true, Entries: []*pb.Entry{{Ns: "app", Key: "k", Value: []byte(`{"a":[1]}`)}}}}},
		{Msg: &pb.SyncReply_Query{Query: &pb.DigestQuery{Id: 1, Ns: "app", Prefixes: []string{"", "0", "zz"}, Names: []*pb.NameQuery{{Prefix: "", Leaves: []byte{1, 2, 3}}}}}},
		{Msg: &pb.SyncReply_Repair{Repair: &pb.Repair{Id: 1, Rev: 0, Entries: []*pb.Entry{{Ns: "app", Key: "r", Value: []byte("not json")}}}}},
		{Msg: &pb.SyncReply_Progress{Progress: &pb.Progress{Rev: 9}}},
	} {
		b, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b)
	}
	f.Fuzz(func(t *testing.T, first, second []byte) {
		s := newSession(nil)
		sent := int64(0)
		for _, data := range [][]byte{first, second} {
			var reply pb.SyncReply
			if proto.Unmarshal(data, &reply) != nil {
				return
			}
			sent = max(sent, reply.GetBatch().GetRev(), reply.GetProgress().GetRev(), reply.GetResync().GetRev(), reply.GetRepair().GetRev())
			out, _ := s.Receive(&reply, t0)
			for _, m := range out.Send {
				if ack := m.GetAck(); ack != nil && ack.GetRev() > sent {
					t.Fatalf("ACK of %d after the controller sent at most %d", ack.GetRev(), sent)
				}
			}
		}
	})
}
