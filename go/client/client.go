// Package client is a Go writer and reader for a statesync controller:
// commands with compares and command ids, reads, status and wait-applied,
// with the controller's structured errors decoded into *Error
// (docs/errors.md). The wire contract is package statesyncv1.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/statesync/statesync/go/canonical"
	pb "github.com/statesync/statesync/go/statesyncv1"
)

// Client talks to one controller. It is safe for concurrent use.
type Client struct {
	conn *grpc.ClientConn
	rpc  pb.StatesyncClient
}

// Option configures Dial.
type Option func(*[]grpc.DialOption)

// WithDialOptions passes gRPC dial options (TLS credentials, interceptors...).
// Without it the connection is plaintext.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *[]grpc.DialOption) { *o = append(*o, opts...) }
}

// Dial connects to the controller at target ("host:port"). The connection is
// made lazily; a controller that cannot be reached shows up as ErrUnavailable.
func Dial(target string, opts ...Option) (*Client, error) {
	dial := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	for _, o := range opts {
		o(&dial)
	}
	conn, err := grpc.NewClient(target, dial...)
	if err != nil {
		return nil, fmt.Errorf("statesync: dialing %s: %w", target, err)
	}
	return &Client{conn: conn, rpc: pb.NewStatesyncClient(conn)}, nil
}

// FromRPC wraps a generated client on a connection the caller owns (Close
// is then a no-op).
func FromRPC(rpc pb.StatesyncClient) *Client { return &Client{rpc: rpc} }

// Close closes the connection.
func (c *Client) Close() error {
	if c.conn == nil {
		return nil
	}
	return c.conn.Close()
}

// RPC is the generated client on this connection, for calls this package
// does not wrap (Sync, Snapshot, Compact, Reconcile).
func (c *Client) RPC() pb.StatesyncClient { return c.rpc }

// Command is an atomic list of ops with optional compares.
type Command struct {
	ops      []*pb.Op
	compares []*pb.Compare
	id       string
	trace    string
	err      error
}

// PutOption qualifies a put.
type PutOption func(*pb.PutOp)

// InSchemaVersion says the value is written in schema version v rather than
// the current one; the controller translates it up (docs/contracts.md §3).
func InSchemaVersion(v int32) PutOption { return func(p *pb.PutOp) { p.SchemaVersion = v } }

// FromBaseRev says the value was derived from the key as read at rev; when
// the key changed since, the namespace's conflict policy decides.
func FromBaseRev(rev int64) PutOption { return func(p *pb.PutOp) { p.BaseRev = rev } }

// NewCommand starts a command. Give it an id (WithID) when you may retry it:
// retrying with the same id never applies it twice (docs/errors.md).
func NewCommand() *Command { return &Command{} }

// WithID sets the command id.
func (c *Command) WithID(id string) *Command { c.id = id; return c }

// WithTrace carries a W3C traceparent to every worker's apply.
func (c *Command) WithTrace(traceparent string) *Command { c.trace = traceparent; return c }

// Put sets key to a JSON value given as Go data (package canonical's types,
// or ints) and encoded canonically.
func (c *Command) Put(ns, key string, value any, opts ...PutOption) *Command {
	b, err := canonical.Encode(value)
	if err != nil {
		c.err = errors.Join(c.err, fmt.Errorf("put %s/%s: %w", ns, key, err))
		return c
	}
	return c.PutJSON(ns, key, b, opts...)
}

// PutJSON sets key to JSON text (the controller checks and canonicalizes it).
func (c *Command) PutJSON(ns, key string, value []byte, opts ...PutOption) *Command {
	put := &pb.PutOp{Ns: ns, Key: key, Value: value}
	for _, o := range opts {
		o(put)
	}
	c.ops = append(c.ops, &pb.Op{Op: &pb.Op_Put{Put: put}})
	return c
}

// Patch applies an RFC 6902 JSON Patch (JSON text) to key's value.
func (c *Command) Patch(ns, key string, patch []byte) *Command {
	c.ops = append(c.ops, &pb.Op{Op: &pb.Op_Patch{Patch: &pb.PatchOp{Ns: ns, Key: key, Patch: patch}}})
	return c
}

// Delete removes key.
func (c *Command) Delete(ns, key string) *Command {
	c.ops = append(c.ops, &pb.Op{Op: &pb.Op_Delete{Delete: &pb.DeleteOp{Ns: ns, Key: key}}})
	return c
}

// IfModRev requires key's mod_rev to equal rev (0: the key is absent).
func (c *Command) IfModRev(ns, key string, rev int64) *Command {
	c.compares = append(c.compares, &pb.Compare{Ns: ns, Key: key, Target: &pb.Compare_ModRev{ModRev: rev}})
	return c
}

// IfExists requires key to exist (true) or to be absent (false).
func (c *Command) IfExists(ns, key string, exists bool) *Command {
	c.compares = append(c.compares, &pb.Compare{Ns: ns, Key: key, Target: &pb.Compare_Exists{Exists: exists}})
	return c
}

// Request is the wire form of the command.
func (c *Command) Request() (*pb.CommandRequest, error) {
	if c.err != nil {
		return nil, c.err
	}
	return &pb.CommandRequest{Ops: c.ops, Compares: c.compares, CommandId: c.id, Trace: c.trace}, nil
}

// Commit commits a command and returns its reply (rev, command id, and
// replayed when the same id had already committed).
func (c *Client) Commit(ctx context.Context, cmd *Command) (*pb.CommandReply, error) {
	req, err := cmd.Request()
	if err != nil {
		return nil, err
	}
	var trailer metadata.MD
	reply, err := c.rpc.Commit(ctx, req, grpc.Trailer(&trailer))
	return reply, FromGRPC(err, trailer)
}

// Get reads one key at rev (0: the head). An absent key is a NotFoundError
// (errors.Is(err, ErrNotFound)) naming the namespace, key and revision read at.
func (c *Client) Get(ctx context.Context, ns, key string, rev int64) (*pb.Entry, error) {
	var trailer metadata.MD
	reply, err := c.rpc.Get(ctx, &pb.GetRequest{Ns: ns, Key: key, Rev: rev}, grpc.Trailer(&trailer))
	if err != nil {
		return nil, FromGRPC(err, trailer)
	}
	if reply.GetEntry() == nil {
		return nil, &Error{Code: "NotFoundError", Status: codes.NotFound,
			Message: fmt.Sprintf("%s/%s is absent at revision %d", ns, key, reply.GetRev()),
			Detail:  map[string]any{"namespace": ns, "key": key, "rev": reply.GetRev()}}
	}
	return reply.GetEntry(), nil
}

// Range reads every entry of ns under prefix at rev (0: the head, pinned at
// the first page), page by page, and returns them with the revision read at.
func (c *Client) Range(ctx context.Context, ns, prefix string, rev int64) ([]*pb.Entry, int64, error) {
	stream, err := c.rpc.Range(ctx, &pb.RangeRequest{Ns: ns, Prefix: prefix, Rev: rev})
	if err != nil {
		return nil, 0, FromGRPC(err, nil)
	}
	var entries []*pb.Entry
	for {
		page, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return entries, rev, nil
		}
		if err != nil {
			return nil, 0, FromGRPC(err, stream.Trailer())
		}
		entries = append(entries, page.GetEntries()...)
		rev = page.GetRev()
	}
}

// Status returns the controller's head, digests and workers.
func (c *Client) Status(ctx context.Context) (*pb.StatusReply, error) {
	var trailer metadata.MD
	reply, err := c.rpc.Status(ctx, &pb.StatusRequest{}, grpc.Trailer(&trailer))
	return reply, FromGRPC(err, trailer)
}

// WaitApplied waits up to timeoutS seconds until the workers subscribed to
// any of namespaces (or exactly workers) have applied rev.
func (c *Client) WaitApplied(ctx context.Context, rev int64, namespaces, workers []string, timeoutS float64) (*pb.WaitAppliedReply, error) {
	var trailer metadata.MD
	reply, err := c.rpc.WaitApplied(ctx, &pb.WaitAppliedRequest{
		Rev: rev, Namespaces: namespaces, Workers: workers, TimeoutS: timeoutS,
	}, grpc.Trailer(&trailer))
	return reply, FromGRPC(err, trailer)
}
