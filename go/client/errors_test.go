package client_test

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/statesync/statesync/go/client"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

func trailerWith(t *testing.T, m *pb.Error) metadata.MD {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return metadata.Pairs(client.ErrorMetadataKey, string(b))
}

func TestStructuredErrorsKeepTheirType(t *testing.T) {
	cases := []struct {
		code      string
		grpc      codes.Code
		retryable bool
		is        []error
		isNot     []error
	}{
		{"MergeConflictError", codes.Aborted, false, []error{client.ErrMergeConflict, client.ErrConflict, client.ErrStatesync}, []error{client.ErrInvalidInput}},
		{"SchemaViolationError", codes.InvalidArgument, false, []error{client.ErrSchemaViolation, client.ErrInvalidInput}, []error{client.ErrConflict}},
		{"StoreClosedError", codes.Unavailable, true, []error{client.ErrStoreClosed, client.ErrStore}, []error{client.ErrUnavailable}},
		{"NotFoundError", codes.NotFound, false, []error{client.ErrNotFound}, []error{client.ErrCompacted}},
	}
	for _, c := range cases {
		t.Run(c.code, func(t *testing.T) {
			wire := &pb.Error{Code: c.code, Message: "m", Detail: []byte(`{"namespace":"app"}`), Retryable: c.retryable}
			err := client.FromGRPC(status.Error(c.grpc, "m"), trailerWith(t, wire))
			var e *client.Error
			if !errors.As(err, &e) || e.Code != c.code || e.Retryable() != c.retryable || e.Status != c.grpc {
				t.Fatalf("decoded %#v", err)
			}
			if e.Detail["namespace"] != "app" {
				t.Fatalf("detail %v", e.Detail)
			}
			for _, target := range c.is {
				if !errors.Is(err, target) {
					t.Errorf("not %v", target)
				}
			}
			for _, target := range c.isNot {
				if errors.Is(err, target) {
					t.Errorf("is %v", target)
				}
			}
		})
	}
}

func TestConflictNamesTheFailedCompares(t *testing.T) {
	wire := &pb.Error{Code: "ConflictError", Detail: []byte(`{"error":"ConflictError","failed":[{"namespace":"app","key":"k","expected":"mod_rev == 3","actual_mod_rev":5}]}`)}
	err := client.FromGRPC(status.Error(codes.Aborted, "conflict"), trailerWith(t, wire))
	var e *client.Error
	if !errors.As(err, &e) {
		t.Fatal(err)
	}
	failed := e.Failed()
	if len(failed) != 1 || failed[0].Key != "k" || failed[0].Expected != "mod_rev == 3" || *failed[0].ActualModRev != 5 {
		t.Fatalf("failed %+v", failed)
	}
}

func TestUnknownCodesAndBareStatuses(t *testing.T) {
	unknown := client.FromGRPC(status.Error(codes.Unavailable, "x"), trailerWith(t, &pb.Error{Code: "FancyNewError", Message: "new", Retryable: true}))
	var e *client.Error
	if !errors.As(unknown, &e) || e.Code != "RemoteError" || e.Retryable() || e.Detail["code"] != "FancyNewError" {
		t.Fatalf("unknown code decoded as %#v", unknown)
	}
	for _, c := range []codes.Code{codes.Unavailable, codes.DeadlineExceeded, codes.Canceled} {
		err := client.FromGRPC(status.Error(c, "down"), nil)
		if !errors.Is(err, client.ErrUnavailable) || !errors.As(err, &e) || !e.Retryable() {
			t.Errorf("%v decoded as %#v", c, err)
		}
	}
	err := client.FromGRPC(status.Error(codes.PermissionDenied, "no"), nil)
	if !errors.As(err, &e) || e.Code != "RemoteError" || e.Detail["code"] != "PermissionDenied" || e.Retryable() {
		t.Fatalf("bare status decoded as %#v", err)
	}
	if client.FromGRPC(nil, nil) != nil {
		t.Fatal("nil error decoded as non-nil")
	}
}
