// Package changelog builds the canonical change record and the hash chain of
// docs/log-format.md, so a Go program can verify a controller's log. It does
// no I/O.
package changelog

import (
	"crypto/sha256"
	"fmt"

	"github.com/statesync/statesync/go/canonical"
)

// GenesisHash is the hash before the first change: 32 zero bytes.
var GenesisHash [32]byte

// Change is one key's change in one command: the twelve members of the
// canonical change object.
type Change struct {
	CommandID  string
	CreateRev  int64
	Key        string
	NS         string
	Op         string // "put" or "delete"
	PrevModRev int64
	Rev        int64
	Seq        int64
	Trace      *string // nil: the writer sent no trace context
	TsMs       int64
	Value      any // the parsed value of a put; nil for a delete
	Version    int64
}

// CanonicalBytes is the RFC 8785 serialization of the change object.
func (c Change) CanonicalBytes() ([]byte, error) {
	if c.Op != "put" && c.Op != "delete" {
		return nil, fmt.Errorf("change %s/%s at %d: op %q is neither put nor delete", c.NS, c.Key, c.Rev, c.Op)
	}
	var trace any
	if c.Trace != nil {
		trace = *c.Trace
	}
	value := c.Value
	if c.Op == "delete" {
		value = nil
	}
	return canonical.Encode(map[string]any{
		"command_id":   c.CommandID,
		"create_rev":   c.CreateRev,
		"key":          c.Key,
		"ns":           c.NS,
		"op":           c.Op,
		"prev_mod_rev": c.PrevModRev,
		"rev":          c.Rev,
		"seq":          c.Seq,
		"trace":        trace,
		"ts_ms":        c.TsMs,
		"value":        value,
		"version":      c.Version,
	})
}

// ChainHash is SHA-256(prev || canonical change bytes).
func ChainHash(prev [32]byte, canonicalChange []byte) [32]byte {
	h := sha256.New()
	h.Write(prev[:])
	h.Write(canonicalChange)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Verify recomputes the chain from anchor over changes and returns the head
// hash, or an error naming the first change whose hash is not the expected one.
func Verify(anchor [32]byte, changes []Change, hashes [][32]byte) ([32]byte, error) {
	if len(changes) != len(hashes) {
		return anchor, fmt.Errorf("%d changes but %d hashes", len(changes), len(hashes))
	}
	prev := anchor
	for i, c := range changes {
		b, err := c.CanonicalBytes()
		if err != nil {
			return prev, err
		}
		prev = ChainHash(prev, b)
		if prev != hashes[i] {
			return prev, fmt.Errorf("change %s/%s at revision %d seq %d does not verify: hash %x, recorded %x", c.NS, c.Key, c.Rev, c.Seq, prev, hashes[i])
		}
	}
	return prev, nil
}
