package client_test

import (
	"encoding/base64"
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/statesync/statesync/go/client"
	"github.com/statesync/statesync/go/internal/vectors"
)

type errorVector struct {
	Name       string `json:"name"`
	GRPCStatus struct {
		Code int `json:"code"`
	} `json:"grpc_status"`
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	ErrorBin string `json:"error_bin"`
	Expect   struct {
		Code      string   `json:"code"`
		Known     bool     `json:"known"`
		Is        []string `json:"is"`
		Retryable bool     `json:"retryable"`
	} `json:"expect"`
}

// Each failed call of conformance/errors, as the controller sends it, decodes
// to the code, the families (errors.Is) and the retryability docs/errors.md gives.
func TestErrorVectors(t *testing.T) {
	var file struct {
		Vectors []errorVector `json:"vectors"`
	}
	vectors.Load(t, "errors", &file)
	if len(file.Vectors) < 25 {
		t.Fatalf("%d error vectors", len(file.Vectors))
	}
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			bin, err := base64.StdEncoding.DecodeString(v.ErrorBin)
			if err != nil {
				t.Fatal(err)
			}
			failed := status.Error(codes.Code(v.GRPCStatus.Code), v.Error.Message)
			got := client.FromGRPC(failed, metadata.Pairs(client.ErrorMetadataKey, string(bin)))
			var e *client.Error
			if !errors.As(got, &e) {
				t.Fatalf("decoded as %T: %v", got, got)
			}
			if e.Code != v.Expect.Code {
				t.Errorf("code %q, want %q", e.Code, v.Expect.Code)
			}
			if e.Retryable() != v.Expect.Retryable {
				t.Errorf("retryable %v, want %v", e.Retryable(), v.Expect.Retryable)
			}
			for _, family := range v.Expect.Is {
				if !errors.Is(e, &client.Error{Code: family}) {
					t.Errorf("not errors.Is %s", family)
				}
			}
			if !v.Expect.Known && !errors.Is(e, client.ErrRemote) {
				t.Errorf("an unknown code %q is not a RemoteError", v.Error.Code)
			}
		})
	}
}
