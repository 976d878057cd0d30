package digest

import (
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// LeafLimit is the largest node answered with its leaves rather than its
// children, as the reference worker does (docs/wire.md, "Threshold").
const LeafLimit = 256

// NodeAnswer describes one trie node for a DigestQuery: either 16 children
// as u32be(count) || fp4, or the leaf4 of every key under it, ascending.
type NodeAnswer struct {
	Prefix   string
	IsLeaves bool
	Children []byte
	Leaves   []byte
}

// CheckPrefix refuses a prefix that is not 0 to 64 lowercase hex nibbles.
func CheckPrefix(prefix string) error {
	if len(prefix) > 64 || strings.Trim(prefix, "0123456789abcdef") != "" {
		return fmt.Errorf("digest prefix %q is not 0 to 64 lowercase hex nibbles", prefix)
	}
	return nil
}

// Answer describes the node at prefix.
func (n *Namespace) Answer(prefix string) (NodeAnswer, error) {
	if err := CheckPrefix(prefix); err != nil {
		return NodeAnswer{}, err
	}
	under := n.itemsUnder(prefix)
	if len(under) > int(^uint32(0)) {
		return NodeAnswer{}, fmt.Errorf("digest node %q holds %d keys, more than a u32 counts", prefix, len(under))
	}
	if len(under) <= LeafLimit || len(prefix) == 64 {
		leaves := make([]uint32, 0, len(under))
		for _, it := range under {
			leaves = append(leaves, leaf4(it.leaf))
		}
		slices.Sort(leaves)
		out := make([]byte, 0, 4*len(leaves))
		for _, l := range leaves {
			out = binary.BigEndian.AppendUint32(out, l)
		}
		return NodeAnswer{Prefix: prefix, IsLeaves: true, Leaves: out}, nil
	}
	var children [16]Node
	for _, it := range under {
		c := hexNibble(it.path[len(prefix)])
		children[c].Count++
		children[c].Sum = children[c].Sum.Add(it.leaf)
	}
	out := make([]byte, 0, 16*8)
	for _, child := range children {
		out = binary.BigEndian.AppendUint32(out, uint32(child.Count))
		fp := child.Fingerprint()
		out = append(out, fp[:4]...)
	}
	return NodeAnswer{Prefix: prefix, Children: out}, nil
}

// Names returns the keys under prefix whose leaf4 is one of the packed
// 4-byte values in leaves, sorted by code point; duplicates are all named.
func (n *Namespace) Names(prefix string, leaves []byte) ([]string, error) {
	if err := CheckPrefix(prefix); err != nil {
		return nil, err
	}
	if len(leaves)%4 != 0 {
		return nil, fmt.Errorf("name query for %q: %d bytes of leaves is not a multiple of 4", prefix, len(leaves))
	}
	wanted := map[uint32]bool{}
	for i := 0; i < len(leaves); i += 4 {
		wanted[binary.BigEndian.Uint32(leaves[i:])] = true
	}
	var names []string
	for key, it := range n.items {
		if strings.HasPrefix(it.path, prefix) && wanted[leaf4(it.leaf)] {
			names = append(names, key)
		}
	}
	slices.Sort(names)
	return names, nil
}

func (n *Namespace) itemsUnder(prefix string) []item {
	var out []item
	for _, it := range n.items {
		if strings.HasPrefix(it.path, prefix) {
			out = append(out, it)
		}
	}
	return out
}

// leaf4 is the most significant 32 bits of a leaf.
func leaf4(leaf U256) uint32 { return uint32(leaf[0] >> 32) }

func hexNibble(c byte) int {
	if c <= '9' {
		return int(c - '0')
	}
	return int(c-'a') + 10
}
