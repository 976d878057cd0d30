"""Per-namespace Merkle-style digests, maintained incrementally.

The construction (docs/digest.md is the normative text, conformance/digest
holds vectors) and its implementation live in the native core
(crates/core/src/digest.rs):

- value_hash = SHA-256(canonical value bytes)
- position(key) = SHA-256(UTF-8 key): a key's place in a 16-ary trie, one
  nibble per level, high nibble first
- leaf(key) = SHA-256("statesync.leaf.v1" 0x00 || u32be(len(key)) || key ||
  value_hash), read as a 256-bit big-endian integer
- node(prefix) = (count, sum): the number of keys whose position starts with
  the nibble string `prefix`, and the sum of their leaves modulo 2**256
- fingerprint(node) = SHA-256("statesync.node.v1" 0x00 || u64be(count) ||
  u256be(sum)); the namespace digest is the root's fingerprint (empty prefix)

Sums commute, so a change updates one entry per materialized level, and two
holders' roots agree iff (with overwhelming probability) their sets of
(key, value) agree, whatever order they were built in. `NamespaceDigest`
materializes the top `MATERIALIZED_LEVELS` levels; deeper nodes are summed
from the leaves the caller lists.
"""

from __future__ import annotations

import statesync._native as _native

__all__ = [
    "MATERIALIZED_LEVELS",
    "NamespaceDigest",
    "Node",
    "bucket_of",
    "fingerprint",
    "leaf_value",
    "position",
    "value_hash",
]

MATERIALIZED_LEVELS: int = _native.MATERIALIZED_LEVELS
NamespaceDigest = _native.NamespaceDigest
Node = _native.Node
bucket_of = _native.bucket_of
fingerprint = _native.fingerprint
leaf_value = _native.leaf_value
position = _native.position
value_hash = _native.sha256
