package client_test

import (
	"context"
	"errors"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/statesync/statesync/go/client"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

// fakeController answers Range and WaitApplied the way the controller does,
// including a structured error in the trailer of a failed stream.
type fakeController struct {
	pb.UnimplementedStatesyncServer
	waited *pb.WaitAppliedRequest
}

func (f *fakeController) Range(req *pb.RangeRequest, stream pb.Statesync_RangeServer) error {
	if req.GetRev() > 10 {
		b, _ := proto.Marshal(&pb.Error{Code: "FutureRevisionError", Message: "rev 11 is after the head",
			Detail: []byte(`{"requested_rev":11,"head_rev":10}`)})
		stream.SetTrailer(map[string][]string{client.ErrorMetadataKey: {string(b)}})
		return status.Error(codes.OutOfRange, "rev 11 is after the head")
	}
	for page := range 2 {
		entry := &pb.Entry{Ns: req.GetNs(), Key: req.GetPrefix() + string(rune('a'+page)), Value: []byte("1")}
		if err := stream.Send(&pb.RangePage{Entries: []*pb.Entry{entry}, Rev: 10}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeController) WaitApplied(_ context.Context, req *pb.WaitAppliedRequest) (*pb.WaitAppliedReply, error) {
	f.waited = req
	return &pb.WaitAppliedReply{Applied: req.GetWorkers(), Complete: true}, nil
}

func dialFake(t *testing.T, f *fakeController) *client.Client {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterStatesyncServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	c, err := client.Dial(lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRangeReadsEveryPageAndDecodesStreamErrors(t *testing.T) {
	c := dialFake(t, &fakeController{})
	entries, rev, err := c.Range(context.Background(), "app", "p/", 0)
	if err != nil || rev != 10 || len(entries) != 2 || entries[1].GetKey() != "p/b" {
		t.Fatalf("range: %v at %d, %v", entries, rev, err)
	}
	_, _, err = c.Range(context.Background(), "app", "", 11)
	var e *client.Error
	if !errors.Is(err, client.ErrFutureRevision) || !errors.As(err, &e) || e.Detail["head_rev"] != 10.0 || e.Retryable() {
		t.Fatalf("a failed range decoded as %#v", err)
	}
}

func TestWaitAppliedSendsTheRequest(t *testing.T) {
	f := &fakeController{}
	c := dialFake(t, f)
	reply, err := c.WaitApplied(context.Background(), 7, nil, []string{"w1"}, 2.5)
	if err != nil || !reply.GetComplete() {
		t.Fatalf("%v %v", reply, err)
	}
	if f.waited.GetRev() != 7 || f.waited.GetTimeoutS() != 2.5 || f.waited.GetWorkers()[0] != "w1" {
		t.Fatalf("request %v", f.waited)
	}
}

func TestAnUnreachableControllerIsUnavailable(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	c, err := client.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Commit(context.Background(), client.NewCommand().Put("app", "k", 1))
	var e *client.Error
	if !errors.Is(err, client.ErrUnavailable) || !errors.As(err, &e) || !e.Retryable() {
		t.Fatalf("commit to nobody: %#v", err)
	}
}

func TestACommandWithANonIJSONValueIsRefusedBeforeSending(t *testing.T) {
	_, err := client.NewCommand().Put("app", "k", map[string]any{"n": float64(1 << 60)}).Request()
	if err == nil {
		t.Fatal("a value beyond I-JSON was accepted")
	}
}

func TestCommandRequest(t *testing.T) {
	req, err := client.NewCommand().WithID("id-1").WithTrace("00-abc-def-01").
		Put("app", "k", map[string]any{"b": 1, "a": []any{true}}, client.InSchemaVersion(1), client.FromBaseRev(4)).
		Patch("app", "p", []byte(`[{"op":"remove","path":"/x"}]`)).
		Delete("app", "d").
		IfModRev("app", "k", 3).IfExists("app", "d", true).
		Request()
	if err != nil {
		t.Fatal(err)
	}
	put := req.GetOps()[0].GetPut()
	if string(put.GetValue()) != `{"a":[true],"b":1}` || put.GetSchemaVersion() != 1 || put.GetBaseRev() != 4 {
		t.Fatalf("put %v", put)
	}
	if req.GetCommandId() != "id-1" || req.GetTrace() != "00-abc-def-01" || len(req.GetOps()) != 3 ||
		req.GetOps()[1].GetPatch().GetKey() != "p" || req.GetOps()[2].GetDelete().GetKey() != "d" {
		t.Fatalf("request %v", req)
	}
	if req.GetCompares()[0].GetModRev() != 3 || !req.GetCompares()[1].GetExists() {
		t.Fatalf("compares %v", req.GetCompares())
	}
}
