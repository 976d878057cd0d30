"""Per-namespace Merkle-style digests, maintained incrementally.

The construction (docs/digest.md is the normative text, conformance/digest
holds vectors):

- value_hash = SHA-256(canonical value bytes)
- position(key) = SHA-256(UTF-8 key): a key's place in a 16-ary trie, one
  nibble per level, high nibble first
- leaf(key) = SHA-256("statesync.leaf.v1" 0x00 || u32be(len(key)) || key ||
  value_hash), read as a 256-bit big-endian integer
- node(prefix) = (count, sum): the number of keys whose position starts with
  the nibble string `prefix`, and the sum of their leaves modulo 2**256
- fingerprint(node) = SHA-256("statesync.node.v1" 0x00 || u64be(count) ||
  u256be(sum)); the namespace digest is the root's fingerprint (empty prefix)

Sums commute, so a change updates one entry per materialized level
(O(depth)), two holders' roots agree iff (with overwhelming probability) their
sets of (key, value) agree, whatever order they were built in, and any holder
may materialize as many levels as it likes: deeper nodes are summed from
leaves on demand. Finding the differing keys descends only into children
whose fingerprints differ, so its cost grows with the number of differing keys
times the depth, not with the namespace size.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "MATERIALIZED_LEVELS",
    "DescentStats",
    "NamespaceDigest",
    "Node",
    "bucket_of",
    "differing_keys",
    "fingerprint",
    "leaf_value",
    "position",
    "prefix_of",
    "value_hash",
]

_MOD = 1 << 256
_LEAF_TAG = b"statesync.leaf.v1\x00"
_NODE_TAG = b"statesync.node.v1\x00"
MATERIALIZED_LEVELS = 4
"""Levels below the root kept in memory (16**4 = 65,536 buckets at the bottom)."""


def value_hash(canonical: bytes) -> bytes:
    return hashlib.sha256(canonical).digest()


def position(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


def prefix_of(key: str, depth: int) -> str:
    """The first `depth` nibbles of the key's position, as lowercase hex."""
    return position(key).hex()[:depth]


def bucket_of(key: str) -> int:
    """The first 16 bits (4 nibbles) of the key's position: its deepest materialized node."""
    return int.from_bytes(position(key)[:2], "big")


def leaf_value(key: str, vhash: bytes) -> int:
    raw = key.encode("utf-8")
    h = hashlib.sha256(_LEAF_TAG + len(raw).to_bytes(4, "big") + raw + vhash).digest()
    return int.from_bytes(h, "big")


@dataclass(frozen=True, slots=True)
class Node:
    count: int
    sum: int

    @property
    def fingerprint(self) -> bytes:
        return fingerprint(self.count, self.sum)


EMPTY_NODE = Node(0, 0)


def fingerprint(count: int, total: int) -> bytes:
    return hashlib.sha256(_NODE_TAG + count.to_bytes(8, "big") + total.to_bytes(32, "big")).digest()


class NamespaceDigest:
    """The root and the top `MATERIALIZED_LEVELS` levels of one namespace's trie.

    Holds no keys: the caller passes the old and new value hash of each key it
    changes. `leaves` (optional) lists a bucket's (key, value_hash) pairs, which
    `node` needs only for prefixes deeper than the materialized levels.
    """

    __slots__ = ("_counts", "_sums")

    def __init__(self) -> None:
        # Index 0 is the root; level l is keyed by the prefix's integer value.
        self._sums: list[dict[int, int]] = [{} for _ in range(MATERIALIZED_LEVELS + 1)]
        self._counts: list[dict[int, int]] = [{} for _ in range(MATERIALIZED_LEVELS + 1)]

    @classmethod
    def from_items(
        cls,
        items: Iterable[tuple[str, bytes]],
        *,
        on_bucket: Callable[[str, int], None] | None = None,
    ) -> NamespaceDigest:
        """The digest of (key, value hash) pairs; `on_bucket(key, bucket_of(key))`
        lets a caller index keys without hashing them a second time."""
        digest = cls()
        bottom_sums = digest._sums[MATERIALIZED_LEVELS]
        bottom_counts = digest._counts[MATERIALIZED_LEVELS]
        shift = 16 - 4 * MATERIALIZED_LEVELS
        for key, vhash in items:
            top = bucket_of(key)
            if on_bucket is not None:
                on_bucket(key, top)
            idx = top >> shift
            bottom_sums[idx] = (bottom_sums.get(idx, 0) + leaf_value(key, vhash)) % _MOD
            bottom_counts[idx] = bottom_counts.get(idx, 0) + 1
        # Upper levels are sums of the level below: one pass per level.
        for level in range(MATERIALIZED_LEVELS - 1, -1, -1):
            sums, counts = digest._sums[level], digest._counts[level]
            for idx, s in digest._sums[level + 1].items():
                parent = idx >> 4
                sums[parent] = (sums.get(parent, 0) + s) % _MOD
                counts[parent] = counts.get(parent, 0) + digest._counts[level + 1][idx]
        return digest

    def update(
        self, key: str, old: bytes | None, new: bytes | None, *, bucket: int | None = None
    ) -> None:
        """Account for `key` changing from value hash `old` to `new` (None: absent);
        `bucket` is `bucket_of(key)` when the caller has it already."""
        if old == new:
            return
        delta = 0
        dcount = 0
        if old is not None:
            delta -= leaf_value(key, old)
            dcount -= 1
        if new is not None:
            delta += leaf_value(key, new)
            dcount += 1
        top = bucket_of(key) if bucket is None else bucket
        shift = 16
        # Sums are reduced modulo 2**256 only when read: Python ints do not overflow.
        for sums, counts in zip(self._sums, self._counts, strict=True):
            idx = top >> shift
            shift -= 4
            count = counts.get(idx, 0) + dcount
            if count:
                counts[idx] = count
                sums[idx] = sums.get(idx, 0) + delta
            else:
                del counts[idx], sums[idx]

    @property
    def count(self) -> int:
        return self._counts[0].get(0, 0)

    def root(self) -> bytes:
        return self.node("").fingerprint

    def node(self, prefix: str, leaves: Callable[[str], Mapping[str, bytes]] | None = None) -> Node:
        level = len(prefix)
        if level <= MATERIALIZED_LEVELS:
            idx = int(prefix, 16) if prefix else 0
            return Node(self._counts[level].get(idx, 0), self._sums[level].get(idx, 0) % _MOD)
        if leaves is None:
            raise ValueError(f"prefix {prefix!r} is deeper than the materialized levels")
        total = count = 0
        for key, vhash in leaves(prefix).items():
            total += leaf_value(key, vhash)
            count += 1
        return Node(count, total % _MOD)


@dataclass(slots=True)
class DescentStats:
    """What a descent cost: node comparisons, levels (round trips) and leaf
    pairs exchanged."""

    nodes_compared: int = 0
    levels: int = 0
    leaves_exchanged: int = 0


class _Side:
    def __init__(self, digest: NamespaceDigest, leaves: Callable[[str], Mapping[str, bytes]]):
        self.digest = digest
        self.leaves = leaves

    def node(self, prefix: str) -> Node:
        return self.digest.node(prefix, self.leaves)


def differing_keys(
    a: NamespaceDigest,
    a_leaves: Callable[[str], Mapping[str, bytes]],
    b: NamespaceDigest,
    b_leaves: Callable[[str], Mapping[str, bytes]],
    *,
    leaf_threshold: int = 16,
) -> tuple[set[str], DescentStats]:
    """Keys whose value differs between two holders, or that only one holds.

    `*_leaves(prefix)` returns the (key -> value_hash) pairs whose position
    starts with `prefix`. Descends only where fingerprints differ and lists a
    bucket's leaves once it holds at most `leaf_threshold` keys on both sides.
    """
    side_a, side_b = _Side(a, a_leaves), _Side(b, b_leaves)
    stats = DescentStats()
    found: set[str] = set()
    frontier = [""]
    while frontier:
        stats.levels += 1
        next_frontier = []
        for prefix in frontier:
            na, nb = side_a.node(prefix), side_b.node(prefix)
            stats.nodes_compared += 1
            if na == nb:
                continue
            if max(na.count, nb.count) <= leaf_threshold or len(prefix) == 64:
                la, lb = a_leaves(prefix), b_leaves(prefix)
                stats.leaves_exchanged += len(la) + len(lb)
                found.update(k for k in la.keys() | lb.keys() if la.get(k) != lb.get(k))
                continue
            next_frontier.extend(prefix + nibble for nibble in "0123456789abcdef")
        frontier = next_frontier
    return found, stats
