package worker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/statesync/statesync/go/digest"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

// scriptedController plays a controller's side of Sync: each stream runs the
// next script; the hellos it received are reported on a channel.
type scriptedController struct {
	pb.UnimplementedStatesyncServer
	hellos  chan *pb.Hello
	scripts []func(pb.Statesync_SyncServer) error
}

func (c *scriptedController) Sync(stream pb.Statesync_SyncServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	c.hellos <- first.GetHello()
	if len(c.scripts) == 0 {
		<-stream.Context().Done()
		return nil
	}
	script := c.scripts[0]
	c.scripts = c.scripts[1:]
	return script(stream)
}

// recvAck skips heartbeats until an ACK arrives.
func recvAck(stream pb.Statesync_SyncServer) (*pb.Ack, error) {
	for {
		m, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if ack := m.GetAck(); ack != nil {
			return ack, nil
		}
	}
}

func serve(t *testing.T, c *scriptedController) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterStatesyncServer(srv, c)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// workerDirs are the worker's replicas: bbolt in a state directory, or in memory.
func workerDirs(t *testing.T) map[string]string {
	return map[string]string{"bbolt": t.TempDir(), "memory": ""}
}

func TestWorkerLoopBootstrapsResumesAndReconnectsWhenStale(t *testing.T) {
	for name, dir := range workerDirs(t) {
		t.Run(name, func(t *testing.T) { testWorkerLoop(t, dir) })
	}
}

func testWorkerLoop(t *testing.T, dir string) {
	value := []byte(`{"x":1}`)
	sum := sha256.Sum256(value)
	d := digest.New()
	d.Set("k", sum)
	root := d.Root()
	acks := make(chan *pb.Ack, 10)
	controller := &scriptedController{hellos: make(chan *pb.Hello, 10)}
	controller.scripts = append(controller.scripts,
		func(stream pb.Statesync_SyncServer) error { // bootstrap, one batch, then the stream ends
			digests := []*pb.NamespaceDigest{{Ns: "app", Root: root[:], Count: 1}}
			if err := stream.Send(&pb.SyncReply{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Rev: 3, Digests: digests}}}); err != nil {
				return err
			}
			chunk := &pb.SnapshotChunk{Rev: 3, Last: true, Digests: digests, Entries: []*pb.Entry{{Ns: "app", Key: "k", Value: value, ModRev: 3}}}
			if err := stream.Send(&pb.SyncReply{Msg: &pb.SyncReply_Chunk{Chunk: chunk}}); err != nil {
				return err
			}
			ack, err := recvAck(stream)
			if err != nil {
				return err
			}
			acks <- ack
			batch := &pb.ChangeBatch{PrevRev: 3, Rev: 4, Revisions: []*pb.Revision{{Rev: 4, Changes: []*pb.Change{{Ns: "app", Key: "k", Kind: pb.Change_DELETE}}}}}
			if err := stream.Send(&pb.SyncReply{Msg: &pb.SyncReply_Batch{Batch: batch}}); err != nil {
				return err
			}
			ack, err = recvAck(stream)
			acks <- ack
			return err
		},
		func(stream pb.Statesync_SyncServer) error { // silent: the worker must give up on it
			<-stream.Context().Done()
			return nil
		},
	)
	target := serve(t, controller)
	var w *Worker
	seen := make(chan string, 10)
	handler := func(e Event) error {
		// A handler may read the worker: it sees the replica before the change.
		_, had := w.Get(e.NS, e.Key)
		seen <- fmt.Sprintf("%s %s at %d, had=%v, applied=%d", e.Op, e.Key, e.Rev, had, w.AppliedRev())
		return nil
	}
	w, err := Open(Config{Target: target, ID: "w", Namespaces: []string{"app"}, Dir: dir,
		Heartbeat: 50 * time.Millisecond, StaleAfter: 1500 * time.Millisecond, Handler: handler})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	wait := func(what string) *pb.Hello {
		select {
		case h := <-controller.hellos:
			return h
		case <-time.After(20 * time.Second):
			t.Fatalf("no %s", what)
			return nil
		}
	}
	if h := wait("first hello"); h.GetFromRev() != 0 || h.GetWorkerId() != "w" {
		t.Fatalf("first hello %v", h)
	}
	if ack := <-acks; ack.GetRev() != 3 || string(ack.GetDigests()[0].GetRoot()) != string(root[:]) {
		t.Fatalf("ack after the snapshot %v", ack)
	}
	if ack := <-acks; ack.GetRev() != 4 || ack.GetDigests()[0].GetCount() != 0 {
		t.Fatalf("ack after the batch %v", ack)
	}
	for _, want := range []string{"put k at 3, had=false, applied=0", "delete k at 4, had=true, applied=3"} {
		if got := <-seen; got != want {
			t.Fatalf("handler saw %q, want %q", got, want)
		}
	}
	if h := wait("hello after the stream ended"); h.GetFromRev() != 4 {
		t.Fatalf("resumed from %d, want 4", h.GetFromRev())
	}
	if h := wait("hello after the stale stream"); h.GetFromRev() != 4 {
		t.Fatalf("reconnected from %d after staleness, want 4", h.GetFromRev())
	}
	var reconnectErr *ReconnectError
	if !errors.As(w.LastError(), &reconnectErr) || !strings.HasPrefix(reconnectErr.Reason, "stale") {
		t.Fatalf("last error %v, want the stale stream", w.LastError())
	}
	waitCtx, waitCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer waitCancel()
	if err := w.WaitFor(waitCtx, 4); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run returned %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if dir == "" {
		return
	}
	// What was ACKed is on disk.
	replica, state, err := OpenReplica(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	if state.Rev != 4 || len(state.Entries) != 0 {
		t.Fatalf("replica at %d with %d entries", state.Rev, len(state.Entries))
	}
}

// A revision the replica could not make durable is never reported applied:
// AppliedRev and WaitFor follow the disk, not the session's state.
func TestWaitForReportsOnlyDurableRevisions(t *testing.T) {
	for name, dir := range workerDirs(t) {
		t.Run(name, func(t *testing.T) { testWaitForReportsOnlyStored(t, dir) })
	}
}

func testWaitForReportsOnlyStored(t *testing.T, dir string) {
	value := []byte(`{"x":1}`)
	d := digest.New()
	d.Set("k", sha256.Sum256(value))
	root := d.Root()
	controller := &scriptedController{hellos: make(chan *pb.Hello, 1)}
	controller.scripts = append(controller.scripts, func(stream pb.Statesync_SyncServer) error {
		digests := []*pb.NamespaceDigest{{Ns: "app", Root: root[:], Count: 1}}
		if err := stream.Send(&pb.SyncReply{Msg: &pb.SyncReply_Resync{Resync: &pb.Resync{Rev: 3, Digests: digests}}}); err != nil {
			return err
		}
		chunk := &pb.SnapshotChunk{Rev: 3, Last: true, Digests: digests, Entries: []*pb.Entry{{Ns: "app", Key: "k", Value: value, ModRev: 3}}}
		if err := stream.Send(&pb.SyncReply{Msg: &pb.SyncReply_Chunk{Chunk: chunk}}); err != nil {
			return err
		}
		<-stream.Context().Done()
		return nil
	})
	w, err := Open(Config{Target: serve(t, controller), ID: "w", Namespaces: []string{"app"}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	// Every write to the replica now fails, as a full or failing disk would.
	if err := w.replica.Close(); err != nil {
		t.Fatal(err)
	}
	var storeErr *storeError
	if err := w.Run(context.Background()); !errors.As(err, &storeErr) {
		t.Fatalf("Run returned %v, want the replica write failure", err)
	}
	if w.session.State().Rev != 3 {
		t.Fatalf("the session applied revision %d, want 3 (the write that failed)", w.session.State().Rev)
	}
	if rev := w.AppliedRev(); rev != 0 {
		t.Fatalf("AppliedRev is %d though nothing was made durable", rev)
	}
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.WaitFor(ended, 3); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitFor(3) returned %v though revision 3 is not durable", err)
	}
}

func TestReconnectDelayGrowsWithTheOutageUpToTheCap(t *testing.T) {
	cases := []struct {
		outage time.Duration
		unit   float64
		want   time.Duration
	}{
		{0, 0, 25 * time.Millisecond},
		{100 * time.Millisecond, 1, 50 * time.Millisecond},
		{400 * time.Millisecond, 1, 100 * time.Millisecond},
		{2 * time.Second, 0, 250 * time.Millisecond},
		{time.Hour, 1, time.Second},
	}
	for _, c := range cases {
		if got := reconnectDelay(c.outage, c.unit); got != c.want {
			t.Errorf("reconnectDelay(%v, %v) = %v, want %v", c.outage, c.unit, got, c.want)
		}
	}
}
