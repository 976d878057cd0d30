package client

import (
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/statesync/statesync/go/statesyncv1"
)

// ErrorMetadataKey is the trailing metadata key that carries a serialized
// statesync.v1.Error (docs/errors.md).
const ErrorMetadataKey = "statesync-error-bin"

// Error is a statesync error: a code from docs/errors.md, its message, its
// detail fields and the gRPC status it came with. Match codes with errors.Is
// and the sentinels below (a subclass matches its parents: a
// MergeConflictError is also an ErrConflict); read fields with Detail.
type Error struct {
	Code      string
	Message   string
	Detail    map[string]any
	Status    codes.Code
	retryable bool
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Retryable reports whether the same request may succeed later unchanged.
// A code this client does not know is never retryable.
func (e *Error) Retryable() bool { return e.retryable }

// Is matches a sentinel whose code is e's code or one of its parents.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	for code := e.Code; code != ""; code = parents[code] {
		if code == t.Code {
			return true
		}
	}
	return false
}

// FailedCompare is one compare of a command that did not hold.
type FailedCompare struct {
	Namespace    string `json:"namespace"`
	Key          string `json:"key"`
	Expected     string `json:"expected"` // "mod_rev == N", "exists" or "absent"
	ActualModRev *int64 `json:"actual_mod_rev"`
}

// Failed returns the compares that failed, for a ConflictError.
func (e *Error) Failed() []FailedCompare {
	var out struct {
		Failed []FailedCompare `json:"failed"`
	}
	raw, _ := json.Marshal(e.Detail)
	_ = json.Unmarshal(raw, &out)
	return out.Failed
}

// parents is the code tree of docs/errors.md (child → parent).
var parents = map[string]string{
	"InvalidInputError":       "StatesyncError",
	"InvalidNamespaceError":   "InvalidInputError",
	"InvalidKeyError":         "InvalidInputError",
	"InvalidValueError":       "InvalidInputError",
	"InvalidPatchError":       "InvalidInputError",
	"InvalidCommandError":     "InvalidInputError",
	"ValueTooLargeError":      "InvalidInputError",
	"SchemaViolationError":    "InvalidInputError",
	"InvalidSchemaError":      "InvalidInputError",
	"IncompatibleSchemaError": "InvalidInputError",
	"InvalidTranslationError": "InvalidInputError",
	"NoTranslationPathError":  "InvalidInputError",
	"CommandIdReusedError":    "InvalidInputError",
	"FutureRevisionError":     "InvalidInputError",
	"ConflictError":           "StatesyncError",
	"MergeConflictError":      "ConflictError",
	"NotFoundError":           "StatesyncError",
	"CompactedError":          "StatesyncError",
	"UnavailableError":        "StatesyncError",
	"ProtocolError":           "StatesyncError",
	"RemoteError":             "StatesyncError",
	"StoreError":              "StatesyncError",
	"StoreClosedError":        "StoreError",
	"StoreInUseError":         "StoreError",
	"StoreFailedError":        "StoreError",
	"StoreCorruptError":       "StoreError",
}

// retryableCodes are the codes docs/errors.md marks retryable.
var retryableCodes = map[string]bool{
	"UnavailableError": true, "StoreClosedError": true, "StoreInUseError": true, "StoreFailedError": true,
}

func sentinel(code string) *Error { return &Error{Code: code} }

// Sentinels for errors.Is, one per code of docs/errors.md.
var (
	ErrStatesync          = sentinel("StatesyncError")
	ErrInvalidInput       = sentinel("InvalidInputError")
	ErrInvalidNamespace   = sentinel("InvalidNamespaceError")
	ErrInvalidKey         = sentinel("InvalidKeyError")
	ErrInvalidValue       = sentinel("InvalidValueError")
	ErrInvalidPatch       = sentinel("InvalidPatchError")
	ErrInvalidCommand     = sentinel("InvalidCommandError")
	ErrValueTooLarge      = sentinel("ValueTooLargeError")
	ErrSchemaViolation    = sentinel("SchemaViolationError")
	ErrInvalidSchema      = sentinel("InvalidSchemaError")
	ErrIncompatibleSchema = sentinel("IncompatibleSchemaError")
	ErrInvalidTranslation = sentinel("InvalidTranslationError")
	ErrNoTranslationPath  = sentinel("NoTranslationPathError")
	ErrCommandIDReused    = sentinel("CommandIdReusedError")
	ErrFutureRevision     = sentinel("FutureRevisionError")
	ErrConflict           = sentinel("ConflictError")
	ErrMergeConflict      = sentinel("MergeConflictError")
	ErrNotFound           = sentinel("NotFoundError")
	ErrCompacted          = sentinel("CompactedError")
	ErrUnavailable        = sentinel("UnavailableError")
	ErrProtocol           = sentinel("ProtocolError")
	ErrRemote             = sentinel("RemoteError")
	ErrStore              = sentinel("StoreError")
	ErrStoreClosed        = sentinel("StoreClosedError")
	ErrStoreInUse         = sentinel("StoreInUseError")
	ErrStoreFailed        = sentinel("StoreFailedError")
	ErrStoreCorrupt       = sentinel("StoreCorruptError")
)

// FromPB converts a wire Error (a CommandStream reply's, or a trailer's).
func FromPB(m *pb.Error, grpcCode codes.Code) *Error {
	e := &Error{Code: m.GetCode(), Message: m.GetMessage(), Status: grpcCode}
	if len(m.GetDetail()) > 0 {
		_ = json.Unmarshal(m.GetDetail(), &e.Detail)
	}
	if _, known := parents[e.Code]; known {
		e.retryable = m.GetRetryable() || retryableCodes[e.Code]
		return e
	}
	// A code this client does not know: shown with its message, never retried.
	return &Error{Code: "RemoteError", Message: e.Error(), Status: grpcCode,
		Detail: map[string]any{"code": e.Code, "detail": e.Detail}}
}

// FromGRPC converts a failed call's error and trailing metadata into an
// *Error: the structured error when the trailer carries one, otherwise
// UnavailableError for transport failures and RemoteError for other bare
// statuses. A nil err gives nil.
func FromGRPC(err error, trailer metadata.MD) error {
	if err == nil {
		return nil
	}
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if values := trailer.Get(ErrorMetadataKey); len(values) > 0 {
		var m pb.Error
		if proto.Unmarshal([]byte(values[0]), &m) == nil && m.GetCode() != "" {
			return FromPB(&m, st.Code())
		}
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled:
		return &Error{Code: "UnavailableError", Message: st.Message(), Status: st.Code(), retryable: true,
			Detail: map[string]any{"reason": st.Message()}}
	default:
		return &Error{Code: "RemoteError", Message: st.Message(), Status: st.Code(),
			Detail: map[string]any{"code": st.Code().String()}}
	}
}
