// Package digest computes the per-namespace digest of docs/digest.md: value
// hashes, key positions, leaves as 256-bit integers summed per trie node, node
// fingerprints and the root, plus the worker's side of a digest descent
// (docs/wire.md, "Digest descent"). It does no I/O.
package digest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math/bits"
	"slices"
	"strings"
)

// Hash is a SHA-256 output.
type Hash = [32]byte

var (
	leafTag = []byte("statesync.leaf.v1\x00")
	nodeTag = []byte("statesync.node.v1\x00")
)

// EmptyRoot is the root of a namespace with no keys (and of every empty node).
var EmptyRoot = Fingerprint(0, U256{})

// U256 is an unsigned 256-bit integer, most significant word first; sums wrap
// modulo 2^256.
type U256 [4]uint64

// FromBytes reads 32 big-endian bytes.
func FromBytes(b Hash) U256 {
	var u U256
	for i := range u {
		u[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	return u
}

// Bytes writes u as 32 big-endian bytes (u256be).
func (u U256) Bytes() Hash {
	var b Hash
	for i, w := range u {
		binary.BigEndian.PutUint64(b[8*i:], w)
	}
	return b
}

// Add returns u + v mod 2^256.
func (u U256) Add(v U256) U256 {
	var carry uint64
	for i := 3; i >= 0; i-- {
		u[i], carry = bits.Add64(u[i], v[i], carry)
	}
	return u
}

// Sub returns u - v mod 2^256.
func (u U256) Sub(v U256) U256 {
	var borrow uint64
	for i := 3; i >= 0; i-- {
		u[i], borrow = bits.Sub64(u[i], v[i], borrow)
	}
	return u
}

// Position is SHA-256 of the key's UTF-8 bytes: its path in the 16-ary trie.
func Position(key string) Hash { return sha256.Sum256([]byte(key)) }

// Leaf is the key's leaf value: SHA-256 of the tagged, length-prefixed key
// and value hash, read as a 256-bit integer.
func Leaf(key string, valueHash Hash) U256 {
	h := sha256.New()
	h.Write(leafTag)
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(key)))
	h.Write(n[:])
	h.Write([]byte(key))
	h.Write(valueHash[:])
	var out Hash
	h.Sum(out[:0])
	return FromBytes(out)
}

// Fingerprint is SHA-256 of a node's tagged count and sum.
func Fingerprint(count uint64, sum U256) Hash {
	var pre [18 + 8 + 32]byte
	copy(pre[:], nodeTag)
	binary.BigEndian.PutUint64(pre[18:], count)
	s := sum.Bytes()
	copy(pre[26:], s[:])
	return sha256.Sum256(pre[:])
}

// Node is the count of keys under a prefix and the sum of their leaves.
type Node struct {
	Count uint64
	Sum   U256
}

// Fingerprint is the node's fingerprint.
func (n Node) Fingerprint() Hash { return Fingerprint(n.Count, n.Sum) }

type item struct {
	valueHash Hash
	path      string // hex(Position(key))
	leaf      U256
}

// Namespace is the digest of one namespace's (key, value hash) pairs. It
// keeps the root incrementally and computes deeper nodes on demand by summing
// the leaves under a prefix (docs/digest.md §5: holders choose their depth).
// The zero value is not usable; call New.
type Namespace struct {
	items map[string]item
	root  Node
}

// New returns an empty namespace digest.
func New() *Namespace { return &Namespace{items: map[string]item{}} }

// Set records key with the given value hash (the hash the digest counts).
func (n *Namespace) Set(key string, valueHash Hash) {
	if old, ok := n.items[key]; ok {
		if old.valueHash == valueHash {
			return
		}
		n.root.Sum = n.root.Sum.Sub(old.leaf)
		n.root.Count--
	}
	pos := Position(key)
	it := item{valueHash: valueHash, path: hex.EncodeToString(pos[:]), leaf: Leaf(key, valueHash)}
	n.items[key] = it
	n.root.Sum = n.root.Sum.Add(it.leaf)
	n.root.Count++
}

// Delete removes key; deleting an absent key changes nothing.
func (n *Namespace) Delete(key string) {
	if old, ok := n.items[key]; ok {
		delete(n.items, key)
		n.root.Sum = n.root.Sum.Sub(old.leaf)
		n.root.Count--
	}
}

// Get returns the value hash counted for key.
func (n *Namespace) Get(key string) (Hash, bool) {
	it, ok := n.items[key]
	return it.valueHash, ok
}

// Count is the number of keys.
func (n *Namespace) Count() uint64 { return n.root.Count }

// Root is the namespace digest: the fingerprint of the root node.
func (n *Namespace) Root() Hash { return n.root.Fingerprint() }

// Node returns the node at a prefix of 0 to 64 lowercase hex nibbles.
func (n *Namespace) Node(prefix string) Node {
	if prefix == "" {
		return n.root
	}
	var node Node
	for _, it := range n.items {
		if strings.HasPrefix(it.path, prefix) {
			node.Count++
			node.Sum = node.Sum.Add(it.leaf)
		}
	}
	return node
}

// Under returns the keys under a prefix with their value hashes.
func (n *Namespace) Under(prefix string) map[string]Hash {
	out := map[string]Hash{}
	for key, it := range n.items {
		if strings.HasPrefix(it.path, prefix) {
			out[key] = it.valueHash
		}
	}
	return out
}

// DiffThreshold is the node size at which DifferingKeys compares leaves.
const DiffThreshold = 16

// DifferingKeys returns the keys whose value hash differs between a and b
// (absent differs from any hash), sorted by code point, by descending from
// the root into the nodes that differ (docs/digest.md §6).
func DifferingKeys(a, b *Namespace) []string {
	found := map[string]bool{}
	frontier := []string{""}
	for len(frontier) > 0 {
		var next []string
		for _, p := range frontier {
			na, nb := a.Node(p), b.Node(p)
			if na == nb {
				continue
			}
			if max(na.Count, nb.Count) <= DiffThreshold || len(p) == 64 {
				la, lb := a.Under(p), b.Under(p)
				for k, h := range la {
					if other, ok := lb[k]; !ok || other != h {
						found[k] = true
					}
				}
				for k := range lb {
					if _, ok := la[k]; !ok {
						found[k] = true
					}
				}
				continue
			}
			for _, c := range "0123456789abcdef" {
				next = append(next, p+string(c))
			}
		}
		frontier = next
	}
	keys := make([]string, 0, len(found))
	for k := range found {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
